"""The emotion probe: a camera at a till -> face -> emotion, age band,
gender -> an emotional score (C-Value), kept in a short ring buffer and
given to the concentrator on request over MQTT. docs/probe.md."""
