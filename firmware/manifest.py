# What the panel's firmware image freezes (lvgl_micropython's
# FROZEN_MANIFEST): bytecode in flash, not in the heap. The same file serves
# the ESP32 images (tools/build-image) and the unix simulator binary
# (host/loyalty_button/panels/lvgl_unix.py), so the tests run what a panel
# holds. Paths are relative to this file. main.py stays on the file system:
# it is the first thing a panel runs. lbboot (the update slots' boot
# selector) is frozen too, so safe mode works whatever the flash holds.
package("lbpanel")
package("boards")
module("lbboot.py")
