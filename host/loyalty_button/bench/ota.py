"""How long an over-the-air update takes (docs/ota.md): one panel alone
(the baseline of the same run), then a store of 20 panels with a canary of
one, each end to end: the signed command, the bundle fetched from the
concentrator's POS HTTP listener and checked file by file, the switch, the
restart into a trial and its confirmation by the host's health check. The
panels are the MicroPython unix port booting main.py from a flash folder;
the network is loopback, so a real store's Wi-Fi sets a slower pace
(the bundle's bytes over about 1 MB/s)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from ..panels import bundle
from ..sim.ota_rig import OtaStore, derive_bundle

STORE_PANELS = 20


def _timed_update(store: OtaStore, version: str, tills: list[str]) -> tuple[float, str]:
    t0 = time.monotonic()
    run = store.update(version, "--canary", "1", "--tills", ",".join(tills), "--timeout", "300",
                       timeout=900)
    took = time.monotonic() - t0
    if run.returncode != 0:
        raise RuntimeError(f"the update failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    return took, run.stdout


def run(out=print) -> dict:
    out(__doc__.strip())
    root = Path(tempfile.mkdtemp(prefix="lb-bench-ota-"))
    tills = [str(n) for n in range(1, STORE_PANELS + 2)]
    store = OtaStore(root, tills, trial_s=300)
    try:
        store.start_concentrator()
        sizes = {}
        for board in ("cyd", "s3_8048"):
            folder = bundle.build(board, root / "sizes")
            m = bundle.load(folder)
            sizes[board] = {"files": len(m["files"]),
                            "bytes": sum(e["size"] for e in m["files"].values())}
        v2 = derive_bundle(store.base, root / "v", "0.2.0")
        store.publish_bundle(v2)
        for t in tills:
            store.add_panel(t)
        store.wait_online(tills)
        alone, _ = _timed_update(store, "0.2.0", ["1"])
        out(f"\none panel alone: {alone:.1f} s")
        many, text = _timed_update(store, "0.2.0", tills[1:])
        out(f"a store of {STORE_PANELS} panels, canary of 1: {many:.1f} s")
        seconds = [float(line.split()[3]) for line in text.splitlines()
                   if line.split()[:1] and line.split()[0].isdigit() and "ok" in line.split()]
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {"bundle": sizes, "one_panel_s": round(alone, 2),
              "store_panels": STORE_PANELS, "store_s": round(many, 2),
              "store_over_one": round(many / alone, 2),
              "per_panel_s_max": max(seconds) if seconds else None}
    out(json.dumps(result))
    return result
