# The panel's screens in LVGL 9: the same methods as the headless UI (ui.py),
# so the question flow never knows which one it drives. Split by audience:
# lvshopper.py (questions, "why?", thank-you), lvinstaller.py (service,
# problems, touch calibration), both built on lvkit.py (palette, fonts,
# building blocks, adverts, the LVGL loop); the words are in chrome.py.
from lbpanel.lvinstaller import InstallerScreens
# Fonts, load_fonts, run_lvgl and count_objects are the boot code's (main.py)
# and the simulator's way in: kept here, beside the class they serve.
from lbpanel.lvkit import Fonts, ScreenKit, count_objects, load_fonts, run_lvgl  # noqa: F401
from lbpanel.lvshopper import ShopperScreens


class LvglUI(ShopperScreens, InstallerScreens, ScreenKit):
    """board: an entry of boards.BOARDS; display: the board's display object
    (width, height, blit(x, y, w, h, buf)); fonts: lvkit.Fonts."""
