"""Where the store appliance (the Debian package, docs/install.md) keeps
things. The systemd units and maintainer scripts in packaging/debian/ name
the same paths; tests/test_install.py checks them against these."""

from pathlib import Path

USER = "loyalty-button"                  # the services' system user and group
OPT = Path("/opt/loyalty-button")        # venv/, wheels/, bundles/, models/
ETC = Path("/etc/loyalty-button")        # settings, catalogue, dashboard users
VAR = Path("/var/lib/loyalty-button")    # records.db, panels.json, backups/
CONFIG = ETC / "concentrator.yaml"       # its presence means "set up"
# The store's own CA (ca.key, ca.crt), made at set-up: among the store's
# data, so a store backup carries it; the broker unit signs Mosquitto's
# server certificate with it.
STORE_CA = VAR / "store-ca"
# Touched by the dashboard's set-up (which runs as USER and may not write
# Mosquitto's files): a systemd path unit then runs `broker apply` as root.
APPLY_REQUEST = VAR / "broker-apply.request"
# Mosquitto's files, which only root writes and Mosquitto's group reads;
# the broker unit writes these and no others (service/broker_conf.py,
# pin_to_appliance), whatever concentrator.yaml says.
MOSQUITTO_CONF = Path("/etc/mosquitto/conf.d/loyalty-button.conf")
MOSQUITTO_PASSWD = Path("/etc/mosquitto/loyalty-button.passwd")
MOSQUITTO_ACL = Path("/etc/mosquitto/loyalty-button.acl")
MOSQUITTO_TLS = Path("/etc/mosquitto/loyalty-button-tls")
