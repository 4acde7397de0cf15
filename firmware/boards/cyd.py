# ESP32-2432S028R "Cheap Yellow Display": ILI9341 on HSPI, XPT2046 resistive
# touch on its own SPI bus. Thin: pins come from lbpanel/boards.py; drivers
# are lvgl_micropython's (lcd_bus, ili9341, xpt2046). Written from the
# published pin map; not run on hardware in this project's CI (no ESP32).
import lcd_bus
import lvgl as lv
import machine

from lbpanel import boards, touchcal

BOARD = boards.get("cyd")


class Display:
    """What the UI needs of a display: its size and a blit for adverts."""

    def __init__(self):
        import ili9341
        d = BOARD["display"]
        self.width = BOARD["width"]
        self.height = BOARD["height"]
        spi = machine.SPI.Bus(host=d["spi_host"], mosi=d["mosi"], miso=d["miso"], sck=d["sck"])
        self.bus = lcd_bus.SPIBus(spi_bus=spi, freq=d["freq"], dc=d["dc"], cs=d["cs"])
        # The partial draw buffer lives in DMA-capable internal RAM, outside
        # the MicroPython heap.
        size = self.width * d["buffer_lines"] * 2
        buf = self.bus.allocate_framebuffer(size, lcd_bus.MEMORY_INTERNAL | lcd_bus.MEMORY_DMA)
        self.driver = ili9341.ILI9341(
            data_bus=self.bus, display_width=240, display_height=320,
            frame_buffer1=buf, reset_pin=d["reset"], backlight_pin=d["backlight"],
            color_space=lv.COLOR_FORMAT.RGB565,
            color_byte_order=ili9341.BYTE_ORDER_BGR if d["bgr"] else ili9341.BYTE_ORDER_RGB,
            rgb565_byte_swap=d["rgb565_swap"])
        self.driver.set_power(True)
        self.driver.init()
        self.driver.set_rotation(lv.DISPLAY_ROTATION._90)
        self.driver.set_backlight(100)

    def blit(self, x, y, w, h, data):
        # The same path LVGL's flush takes: set the window, send the pixels
        # (swapped for the SPI bus, as the driver does for LVGL).
        if BOARD["display"]["rgb565_swap"]:
            lv.draw_sw_rgb565_swap(data, w * h)
        self.driver._set_memory_location(x, y, x + w - 1, y + h - 1)
        self.bus.tx_color(0x2C, data, x, y, x + w - 1, y + h - 1, self.driver._rotation, True)


class ResistiveTouch:
    """XPT2046 as an LVGL pointer, mapped through the calibration stored on
    flash (the resistive film differs from panel to panel). What
    lbpanel.calibrate needs: read_raw() and a settable `calibration`; with
    none, the pointer stays released (the calibration screen reads raw)."""

    def __init__(self, display, cal_path=touchcal.DEFAULT_PATH):
        import xpt2046
        t = BOARD["touch"]
        spi = machine.SPI.Bus(host=t["spi_host"], mosi=t["mosi"], miso=t["miso"], sck=t["sck"])
        device = machine.SPI.Device(spi_bus=spi, freq=t["freq"], cs=t["cs"])
        self.display = display
        self.raw = xpt2046.XPT2046(device)
        self.calibration = touchcal.load(cal_path)
        self.needs_calibration = self.calibration is None
        self.indev = lv.indev_create()
        self.indev.set_type(lv.INDEV_TYPE.POINTER)
        self.indev.set_read_cb(self._read)

    def read_raw(self):
        point = self.raw._get_coords()  # (pressed, raw_x, raw_y) or None
        if not point or not point[0]:
            return None
        return point[1], point[2]

    def _read(self, indev, data):
        raw = self.read_raw()
        if raw is None or self.calibration is None:
            data.state = lv.INDEV_STATE.RELEASED
            return
        x, y = self.calibration.apply(raw[0], raw[1], self.display.width, self.display.height)
        data.point.x, data.point.y = x, y
        data.state = lv.INDEV_STATE.PRESSED


def touch(display):
    return ResistiveTouch(display)
