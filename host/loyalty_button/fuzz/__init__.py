"""Fuzzing every parser of the product (`tools/fuzz`): seeded mutations of
valid samples (mutate.py) fed to the host's parsers (targets.py) and, under
MicroPython, to the panel's (panel.py). docs/development.md, "Fuzzing"."""
