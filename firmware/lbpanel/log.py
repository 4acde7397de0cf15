# Tiny leveled logger for MicroPython (no logging module on the device).
# Lines go to stderr as "LEVEL tag: text" so a simulator or a serial console
# shows them apart from the UI's output.
import sys

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
level = INFO
_out = sys.stderr


def set_level(name):
    global level
    for value, text in _NAMES.items():
        if text == name.upper():
            level = value
            return True
    return False


def _emit(lvl, tag, text):
    if lvl >= level:
        try:
            _out.write("%s %s: %s\n" % (_NAMES[lvl], tag, text))
        except Exception:
            pass  # a broken console must never stop the panel


def debug(tag, text):
    _emit(DEBUG, tag, text)


def info(tag, text):
    _emit(INFO, tag, text)


def warning(tag, text):
    _emit(WARNING, tag, text)


def error(tag, text):
    _emit(ERROR, tag, text)


def exception(tag, text, exc):
    _emit(ERROR, tag, "%s: %s: %s" % (text, type(exc).__name__, exc))
    try:
        sys.print_exception(exc, _out)  # MicroPython
    except AttributeError:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=_out)
