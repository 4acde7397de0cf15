# Loyalty Button panel firmware: the core that runs on the ESP32 under
# MicroPython, and on the host under the MicroPython unix port or CPython.
VERSION = "0.1.0"
