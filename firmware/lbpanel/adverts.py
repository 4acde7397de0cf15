# The advert playlist on the panel: the host's retained manifest (ids,
# sha256, sizes, durations), files cached on flash within a storage budget,
# and the loop of what to show when. A file that fails its sha256 or whose
# image header does not fit the screen is skipped and reported (log line,
# counter, the status message's "adverts" field); it is never shown broken.
import os
import struct

from lbpanel import log
from lbpanel.clock import ticks_add, ticks_diff
from lbpanel.httpget import BadContent, FetchError, fetch_to_file, file_sha256
from lbpanel.outbox import exists

_TAG = "adverts"
# LVGL 9 image file header: magic, colour format, flags, w, h, stride, reserved.
HEADER = "<BBHHHHH"
HEADER_SIZE = 12
MAGIC = 0x19
CF_RGB565 = 0x12


def read_header(path):
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
    if len(head) != HEADER_SIZE:
        raise ValueError("shorter than an image header")
    magic, cf, flags, w, h, stride, _ = struct.unpack(HEADER, head)
    if magic != MAGIC:
        raise ValueError("not an LVGL 9 image (magic 0x%02x)" % magic)
    if cf != CF_RGB565:
        raise ValueError("colour format 0x%02x, the panel shows RGB565 (0x12)" % cf)
    if stride != w * 2:
        raise ValueError("stride %d for width %d" % (stride, w))
    return w, h


class AdvertCache:
    def __init__(self, directory, budget_bytes, screen_w, screen_h, counters):
        self.dir = directory
        self.budget = budget_bytes
        self.screen = (screen_w, screen_h)
        self.counters = counters
        self.url = None
        self.items = []      # the manifest's items that fit the budget
        self.bad = {}        # id -> reason, until the next manifest
        self.checked = {}    # sha256 -> True once hashed this boot
        if not exists(directory):
            os.mkdir(directory)

    def _path(self, item):
        return self.dir + "/" + item["sha256"] + ".bin"

    def _report(self, item, counter, reason):
        self.bad[item["id"]] = reason
        self.counters.add(counter)
        log.warning(_TAG, "advert %s skipped: %s" % (item["id"], reason))

    def set_manifest(self, msg):
        """A new retained manifest: plan what fits, drop what is no longer
        wanted from flash."""
        self.url = msg["url"]
        self.bad = {}
        self.items = []
        used = 0
        for item in msg["items"]:
            if item["w"] > self.screen[0] or item["h"] > self.screen[1]:
                self._report(item, "advert_wrong_size", "%dx%d does not fit the %dx%d screen"
                             % (item["w"], item["h"], self.screen[0], self.screen[1]))
                continue
            if used + item["size"] > self.budget:
                self._report(item, "advert_over_budget", "%d bytes would pass the %d-byte "
                             "flash budget" % (item["size"], self.budget))
                continue
            used += item["size"]
            self.items.append(item)
        wanted = [i["sha256"] + ".bin" for i in self.items]
        for name in os.listdir(self.dir):
            if name not in wanted:
                os.remove(self.dir + "/" + name)
                self.counters.add("advert_evicted")
        log.info(_TAG, "playlist of %d adverts (%d bytes of %d)" % (len(self.items), used, self.budget))

    def _verify(self, item):
        """Is the cached file whole and right for this screen? Hashed once
        per boot (flash can be cut mid-write), header checked every time."""
        path = self._path(item)
        if not exists(path):
            return False
        if item["sha256"] not in self.checked:
            if file_sha256(path) != item["sha256"]:
                os.remove(path)
                self.counters.add("advert_corrupt")
                log.warning(_TAG, "advert %s was corrupt on flash; fetching it again" % item["id"])
                return False
            self.checked[item["sha256"]] = True
            return self._header_ok(item)
        return True

    def _header_ok(self, item):
        """Right hash, but is it a picture for this screen? Checked as soon
        as the file is on flash, so a bad one is reported at once."""
        try:
            w, h = read_header(self._path(item))
        except (OSError, ValueError) as e:
            self._report(item, "advert_corrupt", str(e))
            return False
        if (w, h) != (item["w"], item["h"]):
            self._report(item, "advert_corrupt", "header says %dx%d, manifest %dx%d"
                         % (w, h, item["w"], item["h"]))
            return False
        return True

    def missing(self):
        return [i for i in self.items if i["id"] not in self.bad and not self._verify(i)]

    async def fetch_missing(self):
        """Fetch what is missing, one file at a time. Returns how many
        failed for reasons worth retrying (network)."""
        failed = 0
        for item in self.missing():
            url = self.url + item["sha256"] + ".bin"
            try:
                await fetch_to_file(url, self._path(item), item["sha256"], item["size"])
                self.checked[item["sha256"]] = True
                self.counters.add("advert_fetched")
                log.info(_TAG, "advert %s cached (%d bytes)" % (item["id"], item["size"]))
                self._header_ok(item)
            except BadContent as e:
                # The host sent the wrong bytes: fetching again will not help
                # until it publishes a new manifest.
                self._report(item, "advert_corrupt", "download " + str(e))
            except (FetchError, OSError) as e:
                failed += 1
                self.counters.add("advert_fetch_failed")
                log.warning(_TAG, "advert %s not fetched: %s" % (item["id"], e))
        return failed

    def playable(self):
        out = []
        for item in self.items:
            if item["id"] in self.bad or not exists(self._path(item)):
                continue
            out.append(item)
        return out

    def show_item(self, item):
        """The UI's view of an item, after its header check; None (and the
        item reported) when the file is not a picture for this screen."""
        if not self._header_ok(item):
            return None
        return {"id": item["id"], "path": self._path(item), "w": item["w"], "h": item["h"],
                "offset": HEADER_SIZE}

    def status(self):
        return {"ready": len(self.playable()), "planned": len(self.items),
                "bad": sorted(self.bad)}


class Playlist:
    """Which advert is on screen now and until when."""

    def __init__(self, cache):
        self.cache = cache
        self.index = -1
        self.current = None
        self.until = 0

    def current_id(self):
        return self.current["id"] if self.current else None

    def tick(self, now, force=False):
        """Returns (changed, shown item or None)."""
        if not force and self.current is not None and ticks_diff(now, self.until) < 0:
            return False, self.current
        items = self.cache.playable()
        for _ in range(len(items)):
            self.index = (self.index + 1) % len(items)
            item = items[self.index]
            shown = self.cache.show_item(item)  # None: reported and skipped
            if shown is not None:
                changed = force or self.current is None or self.current["id"] != shown["id"]
                self.current = shown
                self.until = ticks_add(now, item["duration_s"] * 1000)
                return changed, shown
        # Nothing to show: the welcome screen, and look again in 5 s.
        changed = self.current is not None
        self.current = None
        self.until = ticks_add(now, 5000)
        return changed, None
