"""How much MicroPython heap does the panel need: the core alone (from .mpy
bytecode, as copied onto a stock image), and the whole LVGL panel under
lvgl_micropython (firmware frozen in)? Runs a scripted working day in
miniature against a real Mosquitto with the panel's heap capped by
`-X heapsize=`, and finds by bisection the smallest heap in which every
step succeeds.

The scenario: connect; answer questions, each before the next sale (one
with the "why?" follow-up); a question superseded by the next; a 100 KB
junk message (read past); a broker restart with an answer waiting in the
outbox; a status heartbeat."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path

from ..panels import firmware_build
from ..sim.broker import Broker
from ..sim.file_server import FileServer
from ..sim.panel_link import PanelLink
from ..sim.panel import SimPanel, micropython_path, panel_config, panel_env

STORE = "bench"
WHY = {"text": "What mattered most?",
       "reasons": [{"id": r, "text": r.title()} for r in ("queue", "staff", "price", "choice")]}


def _answer(link, panel, session, value, **kw):
    link.ask("p1", session, "nps-main", "nps", "How likely are you to recommend us?", **kw)
    panel.answer(session, value)
    if not kw.get("why"):
        # Each shopper is done before the next sale (a tap through LVGL
        # takes a moment; the next question would supersede it).
        got = link.wait_answer(session, timeout=10)
        if (got["outcome"], got.get("value")) != ("answered", value):
            raise AssertionError(f"{session}: {got['outcome']} {got.get('value')}, not {value}")


def scenario(heapsize_kib: int, firmware: Path | None, root: Path, board: str | None = None,
             adverts: "AdvertServer | None" = None,
             slot: Path | None = None) -> tuple[bool, str, dict]:
    """Returns (passed, why-not, last status). board: None runs the core
    with the headless UI from `firmware` (.mpy) under the unix port; a board
    runs the whole panel (LVGL screens drawn on its glass, taps through
    LVGL's pointer) under lvgl_micropython's 32-bit unix port, firmware
    frozen in, and first shows the advert `adverts` serves."""
    root.mkdir(parents=True, exist_ok=True)
    broker = Broker(root / "broker", store=STORE).start()
    link = PanelLink(STORE, port=broker.port, client_id=f"bench-{heapsize_kib}").start()
    panel = SimPanel(root / "p1", panel_config("p1", STORE, broker.port, root / "p1" / "outbox"),
                     heapsize=f"{heapsize_kib}K", firmware=firmware, board=board,
                     interpreter="micropython", slot=slot)
    try:
        if adverts is not None:
            link.publish("p1", "adverts", adverts.manifest("p1"), retain=True)
        panel.start()
        link.wait_status("p1", "online", timeout=10)
        if adverts is not None:
            panel.wait_screen("adverts", advert=adverts.ADVERT_ID, timeout=20)
        for i in range(4):
            _answer(link, panel, f"r{i}", i + 6)
        _answer(link, panel, "r-why", 3, why=WHY)
        panel.wait_screen("why", timeout=5)
        panel.send("reasons queue,staff")
        # An LVGL panel taps the chips one by one: let it finish first.
        panel.wait_screen("thanks", session="r-why", timeout=10)
        link.ask("p1", "r-old", "nps-main", "nps", "Recommend us?")
        panel.wait_screen("question", session="r-old", timeout=10)
        link.publish("p1", "question", b"x" * 100_000)
        _answer(link, panel, "r-new", 10)
        for s in ("r-why", "r-old", "r-new"):
            link.wait_answer(s, timeout=10)
        _answer(link, panel, "r-outage", 4)
        # The panel announces itself as it reconnects, before it flushes
        # its outbox: take the last status seen before the restart.
        before = link.statuses["p1"]["id"]
        broker.restart()
        link.wait_answer("r-outage", timeout=20)
        link.wait_status("p1", "online", timeout=20, newer_than=before)
        if link.by_session["r-why"].get("reasons") != ["queue", "staff"]:
            return False, f"follow-up reasons lost: {link.by_session['r-why']}", {}
        if link.by_session["r-old"]["outcome"] != "superseded":
            return False, "supersede not recorded", {}
        if "MemoryError" in panel.log_tail(100_000):
            return False, "a MemoryError was logged", {}
        return panel.alive(), "" if panel.alive() else "panel died", link.statuses["p1"]
    except Exception as e:  # any failure means "does not fit"
        tail = panel.log_tail(400).strip().splitlines()
        return False, (f"{type(e).__name__}: {str(e)[:120]} | {tail[-1] if tail else ''}"
                       f" | last screen {panel.last_screen}"), {}
    finally:
        panel.kill()
        link.stop()
        broker.stop()


class AdvertServer:
    """Serves one advert for the board over HTTP on loopback, as the host's
    POS listener serves the playlist's files to the panels."""

    ADVERT_ID = "spring"

    def __init__(self, board: str):
        from ..adverts import image
        from lbpanel import boards
        b = boards.get(board)
        self.board = board
        self.w, self.h = b["width"], b["height"]
        self.body = image.encode(image.sample(self.w, self.h))
        self.sha = hashlib.sha256(self.body).hexdigest()
        self.files = FileServer({f"/adverts/{board}/{self.sha}.bin": self.body})

    def manifest(self, panel_id: str) -> bytes:
        from lbpanel import protocol
        msg = protocol.envelope("adverts", protocol.new_id(), int(time.time()), STORE, panel_id)
        msg["url"] = f"http://127.0.0.1:{self.files.port}/adverts/{self.board}/"
        msg["items"] = [{"id": self.ADVERT_ID, "sha256": self.sha, "size": len(self.body),
                         "duration_s": 600, "w": self.w, "h": self.h}]
        return protocol.encode(msg)

    def close(self) -> None:
        self.files.close()


# The baseline: the least a panel-like program can be -- the interpreter,
# asyncio, and one TCP connection to the broker held open in a task.
BASELINE = """
import asyncio, sys
async def main(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"\\x10\\x0c\\x00\\x04MQTT\\x04\\x02\\x00\\x1e\\x00\\x00")
    await w.drain()
    head = await r.readexactly(4)
    async def idle():
        await asyncio.sleep(0.05)
    await asyncio.create_task(idle())
    print("ok" if head[0] == 0x20 else "bad")
asyncio.run(main(int(sys.argv[1])))
"""

# Resident bytes after importing each module (gc.collect() between).
IMPORTS = """
import gc
gc.collect()
base = gc.mem_alloc()
import asyncio
gc.collect()
print("asyncio", gc.mem_alloc() - base)
for m in ("log", "clock", "protocol", "config", "telemetry", "flow", "outbox",
          "mqtt", "ui", "console", "wifi", "app"):
    before = gc.mem_alloc()
    __import__("lbpanel." + m)
    gc.collect()
    print(m, gc.mem_alloc() - before)
"""


def _bisect(fits, lo: int, hi: int, step: int, out, label: str) -> tuple[int, int]:
    """Smallest heap (KiB) in (lo, hi] for which fits(kib) holds."""
    runs = 0
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        runs += 1
        ok, why = fits(mid)
        out(f"  {label} heapsize={mid:4d}K: {'ok' if ok else 'does not fit (' + why + ')'}")
        if ok:
            hi = mid
        else:
            lo = mid
    return hi, runs


def baseline_min_heap(broker_port: int, workdir: Path, out=print) -> int:
    script = workdir / "baseline.py"
    script.write_text(BASELINE)

    def fits(kib):
        r = subprocess.run([micropython_path(), "-X", f"heapsize={kib}K", str(script),
                            str(broker_port)], capture_output=True, text=True, timeout=30)
        lines = (r.stdout + r.stderr).strip().splitlines()
        return r.stdout.strip() == "ok", lines[-1] if lines else f"exit {r.returncode}"
    return _bisect(fits, 4, 64, 1, out, "baseline")[0]


def resident_by_module(firmware: Path) -> dict:
    r = subprocess.run([micropython_path(), "-X", "heapsize=512K", "-c", IMPORTS],
                       capture_output=True, text=True, env=panel_env(firmware), timeout=30,
                       check=True)
    return {name: int(n) for name, n in (line.split() for line in r.stdout.splitlines())}


# The CYD's heap (hardware/README.md) and what issue 16 holds the whole
# LVGL panel to, with margin.
CYD_BUDGET_KIB = 110
LVGL_TARGET_KIB = 96


def lvgl_binary() -> str:
    """Which interpreter build measured the LVGL figures."""
    from ..panels import lvgl_unix
    binary = lvgl_unix.binary_path()
    r = subprocess.run([str(binary), "-c", "import sys, lvgl as lv\n"
                        "print(sys.implementation.version[:3], lv.version_major(), "
                        "lv.version_minor(), lv.version_patch())"],
                       capture_output=True, text=True, timeout=30, env={"MICROPYPATH": ".frozen"})
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    return (f"lvgl_micropython unix port, 32-bit, firmware frozen in (MicroPython, LVGL): "
            f"{r.stdout.strip()}, {binary.name} sha256 {digest}")


def lvgl_breakdown(board: str, workdir: Path) -> dict:
    """Bytes each step of an LVGL panel's start leaves in the heap
    (firmware/sim/heap_breakdown.py under the binary)."""
    from ..panels import fonts, lvgl_unix
    from ..panels.firmware_build import FIRMWARE_DIR
    from ..sim.panel import STUBS_DIR
    r = subprocess.run([str(lvgl_unix.binary_path()), "-X", "heapsize=512K",
                        str(FIRMWARE_DIR / "sim" / "heap_breakdown.py"), board,
                        str(fonts.fonts_dir()), str(workdir / "glass.rgb565")],
                       capture_output=True, text=True, timeout=60, cwd=workdir,
                       env={"MICROPYPATH": f".frozen:{STUBS_DIR}"}, check=True)
    return {name: int(n) for name, n in (line.split() for line in r.stdout.splitlines())}


def lvgl_min_heap(root: Path, out=print, board: str = "cyd") -> tuple[int, int]:
    """The whole LVGL panel's smallest heap (KiB) on the scenario with an
    advert shown; returns (KiB, runs). A size counts once it passes twice:
    a single pass just above the edge is not a figure to hold a panel to."""
    adverts = AdvertServer(board)
    runs = [0]

    def fits(kib):
        runs[0] += 1
        ok, why, _ = scenario(kib, None, root / f"lvgl{kib}-{runs[0]}", board=board,
                              adverts=adverts)
        return ok, why
    try:
        hi = 160
        ok, why = fits(hi)
        if not ok:
            raise RuntimeError(f"the LVGL panel fails even with {hi} KiB: {why}")
        best, n = _bisect(fits, 40, hi, 4, out, f"lvgl {board}")
        while best < hi:
            ok, why = fits(best)
            out(f"  lvgl {board} heapsize={best:4d}K again: {'ok' if ok else 'does not fit (' + why + ')'}")
            if ok:
                break
            best += 4
        return best, runs[0]
    finally:
        adverts.close()


def run(out=print) -> dict:
    """The heap benchmark; returns the figures (also printed as the last line
    of stdout by the CLI)."""
    with tempfile.TemporaryDirectory(prefix="lb-heap-") as tmp:
        root = Path(tmp)
        firmware = firmware_build.build(root / "fw")
        out("method: the panel core runs from .mpy bytecode under the MicroPython unix port")
        out("(x86-64) with -X heapsize=N; N is bisected (4 KiB steps) to the smallest heap in")
        out("which a scripted scenario passes: 7 answers (one with the why? follow-up), a")
        out("superseded question, a 100 KB junk message, a broker restart with an answer in")
        out("the outbox, and a fresh status heartbeat. Baseline, same run: the smallest heap")
        out("for asyncio plus one open MQTT connection (1 KiB steps).")
        with Broker(root / "baseline-broker", store=STORE) as b:
            base = baseline_min_heap(b.port, root, out)
        hi = 192
        ok, why, status = scenario(hi, firmware, root / "ceiling")
        if not ok:
            raise RuntimeError(f"the scenario fails even with {hi} KiB: {why}")
        statuses = {hi: status}

        def fits(kib):
            ok, why, st = scenario(kib, firmware, root / f"run{kib}")
            statuses[kib] = st
            return ok, why
        best, runs = _bisect(fits, 32, hi, 4, out, "panel")
        resident = resident_by_module(firmware)
        out("the whole CYD panel (core, LVGL screens on a 320x240 glass, MQTT, outbox, an")
        out("advert) under lvgl_micropython's 32-bit unix port, firmware frozen in, on the")
        out("same scenario after its advert is shown; 4 KiB steps, a size counts when it")
        out("passes twice")
        lvgl_kib, lvgl_runs = lvgl_min_heap(root, out)
        breakdown = lvgl_breakdown("cyd", root)
        return {
            "panel_min_heap_kib": best,
            "baseline_min_heap_kib": base,
            "panel_over_baseline": round(best / base, 2),
            "heap_min_free_at_min_bytes": statuses[best].get("heap_min_free"),
            "resident_code_bytes": sum(v for k, v in resident.items() if k != "asyncio"),
            "resident_by_module_bytes": resident,
            "target_kib": 64,
            "scenario_runs": runs + 1,
            "lvgl_heap_kib": lvgl_kib,
            "lvgl_over_baseline": round(lvgl_kib / base, 2),
            "lvgl_target_kib": LVGL_TARGET_KIB,
            "lvgl_budget_kib": CYD_BUDGET_KIB,
            "lvgl_breakdown_bytes": breakdown,
            "lvgl_binary": lvgl_binary(),
            "lvgl_scenario_runs": lvgl_runs,
        }


if __name__ == "__main__":
    print(json.dumps(run()))
