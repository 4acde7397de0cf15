"""Run the fuzz targets and report cases and crashes per parser as JSON.

    loyalty-button fuzz [--cases N] [--seed S] [--only NAME ...]

A crash is any exception other than the parser's own refusal; the first
few are kept with their input (repr, cut to 300 characters) so they can be
replayed. Exit status 1 when anything crashed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from .mutate import Rng
from .targets import host_targets

PANEL_SCRIPT = Path(__file__).with_name("panel.py")
_KEEP = 3


def run_host(target, cases: int, seed: int) -> dict:
    rng = Rng(seed)
    crashes, examples = 0, []
    started = time.perf_counter()
    for _ in range(cases):
        case = target.make(rng)
        try:
            target.run(case)
        except target.expected:
            pass
        except Exception as e:  # the finding: any other exception
            crashes += 1
            if len(examples) < _KEEP:
                examples.append({"error": f"{type(e).__name__}: {e}"[:300],
                                 "input": repr(case)[:300]})
    return {"cases": cases, "crashes": crashes, "seconds": round(time.perf_counter() - started, 1),
            "examples": examples}


def start_panel(cases: int, seed: int) -> subprocess.Popen:
    """The panel's parsers under the MicroPython unix port, in parallel."""
    from ..sim.panel import micropython_path, panel_env
    return subprocess.Popen([micropython_path(), str(PANEL_SCRIPT), str(cases), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=panel_env(), text=True)


def run(cases: int = 100_000, seed: int = 1, only=()) -> dict:
    # The parsers log what they refuse; a hundred thousand lines help nobody.
    logging.disable(logging.CRITICAL)
    try:
        return _run(cases, seed, only)
    finally:
        logging.disable(logging.NOTSET)


def _run(cases: int, seed: int, only) -> dict:
    started = time.perf_counter()
    panel = None
    if not only or any(name.endswith("_upy") for name in only):
        panel = start_panel(cases, seed)
    out: dict = {}
    for target in host_targets():
        if not only or target.name in only:
            out[target.name] = run_host(target, cases, seed)
    if panel is not None:
        text, _ = panel.communicate()
        if panel.returncode != 0:
            out["panel_upy"] = {"cases": 0, "crashes": 1, "examples": [
                {"error": f"micropython exited with {panel.returncode}"}]}
        else:
            for name, result in json.loads(text).items():
                if not only or name in only:
                    out[name] = result
    return {"seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "crashes": sum(r["crashes"] for r in out.values()), "parsers": out}


def cli(args) -> int:
    report = run(args.cases, args.seed, args.only or ())
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report["crashes"] else 0
