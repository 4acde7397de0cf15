# ESP32-8048S043C: ESP32-S3 with 8 MB PSRAM, a 4.3" 800x480 RGB panel
# (ST7262, 16-bit parallel RGB565) and GT911 capacitive touch on I2C. Thin:
# pins and timings come from lbpanel/boards.py; drivers are
# lvgl_micropython's (lcd_bus.RGBBus, rgb_display, i2c, gt911). Written from
# the published pin map; not run on hardware in this project's CI.
import lcd_bus
import lvgl as lv

from lbpanel import boards

BOARD = boards.get("s3_8048")


class Display:
    def __init__(self):
        import rgb_display
        d = BOARD["display"]
        self.width = BOARD["width"]
        self.height = BOARD["height"]
        pins = d["data"]
        self.bus = lcd_bus.RGBBus(
            hsync=d["hsync"], vsync=d["vsync"], de=d["de"], pclk=d["pclk"],
            data0=pins[0], data1=pins[1], data2=pins[2], data3=pins[3], data4=pins[4],
            data5=pins[5], data6=pins[6], data7=pins[7], data8=pins[8], data9=pins[9],
            data10=pins[10], data11=pins[11], data12=pins[12], data13=pins[13],
            data14=pins[14], data15=pins[15], freq=d["freq"],
            hsync_front_porch=d["hsync_front"], hsync_back_porch=d["hsync_back"],
            hsync_pulse_width=d["hsync_pulse"], vsync_front_porch=d["vsync_front"],
            vsync_back_porch=d["vsync_back"], vsync_pulse_width=d["vsync_pulse"],
            pclk_active_low=d["pclk_active_neg"])
        size = self.width * d["buffer_lines"] * 2
        buf1 = self.bus.allocate_framebuffer(size, lcd_bus.MEMORY_SPIRAM)
        self.driver = rgb_display.RGBDisplay(
            data_bus=self.bus, display_width=self.width, display_height=self.height,
            frame_buffer1=buf1, backlight_pin=d["backlight"],
            color_space=lv.COLOR_FORMAT.RGB565)
        self.driver.set_power(True)
        self.driver.init()
        self.driver.set_backlight(100)

    def blit(self, x, y, w, h, data):
        self.bus.tx_color(0, data, x, y, x + w - 1, y + h - 1, 0, True)


def touch(display):
    """GT911 as an LVGL pointer; capacitive, so no calibration."""
    import gt911
    import i2c
    t = BOARD["touch"]
    bus = i2c.I2C.Bus(host=t["i2c_host"], sda=t["sda"], scl=t["scl"], freq=t["freq"])
    device = i2c.I2C.Device(bus=bus, dev_id=t["addr"], reg_bits=gt911.BITS)
    return gt911.GT911(device, reset_pin=t["reset"], interrupt_pin=t["irq"])
