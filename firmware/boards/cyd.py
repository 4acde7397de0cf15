# ESP32-2432S028R "Cheap Yellow Display": ILI9341 on HSPI, XPT2046 resistive
# touch on its own SPI bus. Thin: pins come from lbpanel/boards.py; the
# display driver is lvgl_micropython's (lcd_bus, ili9341), the touch chip is
# read here in a few lines (raw values for lbpanel.touchcal). Written from the
# published pin map; not run on hardware in this project's CI (no ESP32).
import lcd_bus
import lvgl as lv
import machine

from lbpanel import boards, touchcal

BOARD = boards.get("cyd")
_RAMWR = 0x2C            # ILI9341: memory write
# XPT2046 control bytes (start bit, channel, 12-bit, differential): X, Y
# and the two pressure plates.
_READ_X, _READ_Y, _READ_Z1, _READ_Z2 = 0xD0, 0x90, 0xB0, 0xC0
_PRESSED_Z = 400         # pressure below this is a brush, not a touch


class Display:
    """What the UI needs of a display: its size and a blit for adverts."""

    def __init__(self):
        import ili9341
        d = BOARD["display"]
        self.width = BOARD["width"]
        self.height = BOARD["height"]
        native_w, native_h = boards.native_size(BOARD)
        spi = machine.SPI.Bus(host=d["spi_host"], mosi=d["mosi"], miso=d["miso"], sck=d["sck"])
        self.bus = lcd_bus.SPIBus(spi_bus=spi, freq=d["freq"], dc=d["dc"], cs=d["cs"])
        # The partial draw buffer lives in DMA-capable internal RAM, outside
        # the MicroPython heap.
        size = self.width * d["buffer_lines"] * 2
        buf = self.bus.allocate_framebuffer(size, lcd_bus.MEMORY_INTERNAL | lcd_bus.MEMORY_DMA)
        self.driver = ili9341.ILI9341(
            data_bus=self.bus, display_width=native_w, display_height=native_h,
            frame_buffer1=buf, reset_pin=d["reset"], backlight_pin=d["backlight"],
            color_space=lv.COLOR_FORMAT.RGB565,
            color_byte_order=ili9341.BYTE_ORDER_BGR if d["bgr"] else ili9341.BYTE_ORDER_RGB,
            rgb565_byte_swap=d["rgb565_swap"])
        self.driver.set_power(True)
        self.driver.init()
        self.driver.set_rotation(getattr(lv.DISPLAY_ROTATION, "_%d" % d["rotation"]))
        self.driver.set_backlight(100)

    def blit(self, x, y, w, h, data):
        # The same path LVGL's flush takes: set the window, send the pixels
        # (swapped for the SPI bus, as the driver does for LVGL). The driver
        # framework has no public call for a window outside LVGL's buffers,
        # so this one private method is used, here only; an advert band of
        # 150 KB cannot go through LVGL's 6.4 KB draw buffer.
        if BOARD["display"]["rgb565_swap"]:
            lv.draw_sw_rgb565_swap(data, w * h)
        self.driver._set_memory_location(x, y, x + w - 1, y + h - 1)
        self.bus.tx_color(_RAMWR, data, x, y, x + w - 1, y + h - 1,
                          self.driver.get_rotation(), True)


class ResistiveTouch:
    """XPT2046 as an LVGL pointer, mapped through the calibration stored on
    flash (the resistive film differs from panel to panel). What
    lbpanel.calibrate needs: read_raw() and a settable `calibration`; with
    none, the pointer stays released (the calibration screen reads raw)."""

    def __init__(self, display, cal_path=touchcal.DEFAULT_PATH):
        t = BOARD["touch"]
        spi = machine.SPI.Bus(host=t["spi_host"], mosi=t["mosi"], miso=t["miso"], sck=t["sck"])
        self.device = machine.SPI.Device(spi_bus=spi, freq=t["freq"], cs=t["cs"])
        self.display = display
        self._tx = bytearray(3)
        self._rx = bytearray(3)
        self.calibration = touchcal.load(cal_path)
        self.indev = lv.indev_create()
        self.indev.set_type(lv.INDEV_TYPE.POINTER)
        self.indev.set_read_cb(self._read)

    def _sample(self, command):
        # One 12-bit conversion: the command byte, then the result MSB first
        # in the next two bytes, left-aligned (XPT2046 datasheet, 24-clock
        # conversion).
        self._tx[0] = command
        self.device.write_readinto(self._tx, self._rx)
        return ((self._rx[1] << 8) | self._rx[2]) >> 3

    def read_raw(self):
        """(raw_x, raw_y) while pressed, else None. Read straight from the
        chip: the calibration (lbpanel.touchcal) maps raw to pixels, so
        the driver's own mapping is not wanted."""
        z = self._sample(_READ_Z1) + 4095 - self._sample(_READ_Z2)
        if z < _PRESSED_Z:
            return None
        return self._sample(_READ_X), self._sample(_READ_Y)

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
