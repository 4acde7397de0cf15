# The panel's configuration: one JSON file on the panel's flash (panel.json),
# validated before anything starts, plus the few settings the host may change
# at run time over the retained config topic.
#
# A mistake in a required setting leaves the panel up on its "not configured"
# screen saying what to fix (no crash loop an installer cannot read); a
# mistake in an optional one falls back to the default with a warning that is
# also counted in telemetry.
import json

from lbpanel import protocol

REQUIRED = object()

# dotted name, kind, default, range (for int) -- the one list of settings.
# docs/panel.md ("panel.json") explains each for installers.
FIELDS = (
    ("panel_id", "id", REQUIRED, None),
    ("store", "id", REQUIRED, None),
    ("broker.host", "str", REQUIRED, None),
    ("broker.port", "int", 1883, (1, 65535)),
    ("broker.user", "str", None, None),
    ("broker.password", "str", None, None),
    ("broker.keepalive_s", "int", 30, (5, 600)),
    # Reconnect backoff doubles from 1 s up to this ceiling (plus jitter, so
    # a store's panels do not all knock at once after a broker restart).
    ("broker.retry_max_s", "int", 30, (1, 600)),
    # TLS: the store's CA certificate (DER) on the panel's flash; set, the
    # panel dials TLS and trusts only that CA (docs/broker.md).
    ("broker.ca_file", "str", None, None),
    ("wifi.ssid", "str", None, None),
    ("wifi.password", "str", None, None),
    ("lang", "id", "en", None),
    ("thanks_s", "int", 3, (1, 30)),
    ("heartbeat_s", "int", 30, (2, 3600)),
    # Touches this soon after a question appears are the previous shopper's
    # or a stray palm, not an answer.
    ("question_guard_ms", "int", 300, (0, 3000)),
    # A pick settles this long before it counts; presses meanwhile are the
    # same shopper (or a child mashing), not more answers.
    ("touch.settle_ms", "int", 300, (0, 2000)),
    # This many presses on one question flag its answer as a burst.
    ("touch.burst_presses", "int", 4, (2, 100)),
    ("thanks_qr_s", "int", 12, (3, 60)),
    # The panel's hardware (firmware/lbpanel/boards.py); "none" = headless.
    ("board", "str", "none", None),
    ("adverts.dir", "str", "adverts", None),
    # Flash the advert cache may fill; 0 = the board's own budget.
    ("adverts.budget_kb", "int", 0, (0, 1 << 20)),
    ("outbox.dir", "str", "outbox", None),
    ("outbox.max_entries", "int", 100, (1, 5000)),
    ("log_level", "str", "INFO", None),
    # Updates (docs/ota.md): the store's signing key (64 hex digits, written
    # by `loyalty-button panels`), and how long an update may run on trial
    # before it must have been confirmed.
    ("ota.key", "str", None, None),
    ("ota.trial_s", "int", 300, (10, 3600)),
)

# What the host may set over lb/v1/<store>/panel/<panel>/config.
HOST_SETTINGS = ("lang", "thanks_s", "heartbeat_s", "question_guard_ms", "touch.settle_ms",
                 "touch.burst_presses", "thanks_qr_s")


class ConfigError(ValueError):
    # `board`: the board the file names, when it names one, so a panel with
    # a bad file can still say so on its own screen.
    def __init__(self, problems, board=None):
        super().__init__("; ".join(problems))
        self.problems = problems
        self.board = board


def lookup(doc, dotted):
    """doc['a']['b'] for 'a.b' -> (found, value). The host's settings use it too."""
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_value(name, kind, value, limits):
    """Returns an error text for a bad value, or None."""
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return "%s must be a whole number, got %r" % (name, value)
        if limits and not limits[0] <= value <= limits[1]:
            return "%s must be between %d and %d, got %d" % (name, limits[0], limits[1], value)
    elif kind == "id":
        if not protocol.valid_id(value):
            return ("%s must be 1-%d characters of letters, digits, '.', '_' or '-', got %r"
                    % (name, protocol.MAX_ID, value))
    elif not isinstance(value, str) or not value:
        return "%s must be non-empty text, got %r" % (name, value)
    return None


def _known_keys(doc, prefix, known, found):
    for key in doc:
        name = prefix + key
        if isinstance(doc[key], dict) and any(k.startswith(name + ".") for k in known):
            _known_keys(doc[key], name + ".", known, found)
        elif name not in known:
            found.append(name)


def parse(doc, source="panel.json"):
    """Validate a parsed config document. Returns (settings, warnings) where
    settings maps each dotted name to its value. Raises ConfigError listing
    every fatal problem at once, so an installer fixes the file in one go."""
    if not isinstance(doc, dict):
        raise ConfigError(["%s must hold a JSON object" % source])
    settings = {}
    problems = []
    warnings = []
    for name, kind, default, limits in FIELDS:
        present, value = lookup(doc, name)
        if not present or value is None:
            if default is REQUIRED:
                problems.append("%s: '%s' is missing" % (source, name))
            else:
                settings[name] = default
            continue
        err = check_value(name, kind, value, limits)
        if err is None:
            settings[name] = value
        elif default is REQUIRED:
            problems.append("%s: %s" % (source, err))
        else:
            warnings.append("%s: %s; using the default %r" % (source, err, default))
            settings[name] = default
    unknown = []
    _known_keys(doc, "", [f[0] for f in FIELDS], unknown)
    for name in unknown:
        warnings.append("%s: unknown setting '%s' ignored (a typo?)" % (source, name))
    if problems:
        board = doc.get("board")
        raise ConfigError(problems, board if isinstance(board, str) else None)
    return settings, warnings


def load(path):
    """Read and validate the config file at `path`."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(["cannot read %s (%s): copy a panel.json onto the panel" % (path, e)])
    try:
        doc = json.loads(text)
    except ValueError:
        raise ConfigError(["%s is not valid JSON: check commas and quotes" % path])
    return parse(doc, path)


def apply_host_settings(settings, incoming):
    """Apply the host's retained config message. Each setting is checked like
    the file's; bad or unknown ones are skipped. Returns (applied, rejected)
    lists of names and error texts."""
    applied = []
    rejected = []
    spec = {}
    for name, kind, default, limits in FIELDS:
        spec[name] = (kind, limits)
    for name in incoming:
        if name not in HOST_SETTINGS:
            rejected.append("host may not set '%s'" % name)
            continue
        kind, limits = spec[name]
        err = check_value(name, kind, incoming[name], limits)
        if err:
            rejected.append(err)
        else:
            settings[name] = incoming[name]
            applied.append(name)
    return applied, rejected
