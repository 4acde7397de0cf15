"""How long the installer's station takes per panel, and with several at
once: one panel flashed alone (the baseline of the same run), then three in
parallel, each end to end (a 1 MB image written by esptool into the ROM
bootloader mock, the bundle copied and checked by mpremote on the
MicroPython REPL, reset, online on a real Mosquitto; docs/installer.md).
The ratio says what parallel flashing buys on this machine."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from esp32_mock_bootloader import mock_bootloader

from ..panels import bundle
from ..panels.registry import Registry
from ..panels.station import Job, Station, StatusWatch
from ..service import config as host_config
from ..sim.install_rig import WIFI, start_broker, store_config
from ..sim.serial_panel import SerialPanel

IMAGE_BYTES = 1 << 20


def _round(station, watch, tills, root) -> tuple[float, list[Job]]:
    panels = {t: SerialPanel(root / f"flash-{t}", name=f"till-{t}", air=[WIFI]).start()
              for t in tills}
    mocks = {t: mock_bootloader(chip="esp32") for t in tills}
    try:
        jobs = [Job(f"till-{t}", t, "cyd", panels[t].port, mocks[t].url()) for t in tills]
        t0 = time.monotonic()
        station.flash_all(jobs, watch=watch)
        return time.monotonic() - t0, jobs
    finally:
        for m in mocks.values():
            m.stop()
        for p in panels.values():
            p.stop()


def run(out=print) -> dict:
    out(__doc__.strip())
    root = Path(tempfile.mkdtemp(prefix="lb-bench-installer-"))
    broker = start_broker(root)
    try:
        cfg = host_config.load(store_config(root, broker))
        registry = Registry(cfg)
        for t in ("1", "2", "3", "4"):
            registry.add(t, "cyd")
        image = root / "image.bin"
        image.write_bytes(os.urandom(IMAGE_BYTES))
        folder = bundle.build("cyd", root / "bundles")
        files = len(bundle.load(folder)["files"])
        station = Station(cfg, registry, {"cyd": folder}, image=image, online_timeout=60)
        watch = StatusWatch(cfg, *registry.installer_login()).start()
        try:
            alone, jobs1 = _round(station, watch, ["1"], root)
            out(f"\none panel alone: {alone:.1f} s ({jobs1[0].result})")
            together, jobs3 = _round(station, watch, ["2", "3", "4"], root)
            out(f"three in parallel: {together:.1f} s "
                f"({', '.join(f'till {j.till} {j.seconds:.1f} s {j.result}' for j in jobs3)})")
        finally:
            watch.stop()
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {"image_bytes": IMAGE_BYTES,
              "bundle_files": files,
              "one_panel_s": round(alone, 2), "three_parallel_s": round(together, 2),
              "parallel_over_one": round(together / alone, 2),
              "per_panel_s": [j.seconds for j in jobs3],
              "all_online": all(j.result == "ok" for j in jobs1 + jobs3)}
    out(json.dumps(result))
    return result
