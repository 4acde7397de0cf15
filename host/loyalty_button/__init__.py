"""Loyalty Button store host: talks to the checkout panels over MQTT and,
as later parts land, takes receipts from the POS, stores feedback records
and forwards them. The wire protocol is shared with the panel firmware
(`lbpanel.protocol`)."""

__version__ = "0.1.0"
