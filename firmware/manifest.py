# The project's own panel modules, in MicroPython's manifest format, for an
# image that freezes them into flash (bytecode in flash, not in the heap:
# hardware/README.md says what a panel's image must hold). Paths are
# relative to this file. main.py stays on the file system: it is the first
# thing a panel runs. lbboot (the update slots' boot selector) is listed
# too, so safe mode works whatever the flash holds.
package("lbpanel")
package("boards")
module("lbboot.py")
