"""What the host makes for the panels: the firmware as a device gets it
(`firmware_build`: .mpy bytecode) and the boards' fonts (`fonts`)."""
