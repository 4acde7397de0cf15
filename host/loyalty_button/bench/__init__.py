"""Benchmarks (`tools/bench NAME`): `store` (end to end), `heap` (the
panel's smallest MicroPython heap), `probe` (the emotion probe's stages).
Each reports its figures against a baseline measured in the same run."""
