"""Runs every test in tests/upy/ under the real MicroPython unix port (pytest
itself runs them under CPython): the panel core must behave the same on both
interpreters."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loyalty_button.sim.panel import micropython_path, panel_env

UPY = Path(__file__).parent / "upy"
RUNNER = UPY / "runner.py"


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([micropython_path(), str(RUNNER), *args], capture_output=True,
                          text=True, env=env or panel_env(), timeout=60)


def _collect() -> list:
    params = []
    for path in sorted(UPY.glob("test_*.py")):
        listing = _run(str(path))
        if listing.returncode != 0:
            params.append(pytest.param(path.name, "<import>", id=f"{path.stem}::<import>"))
            continue
        for name in listing.stdout.split():
            params.append(pytest.param(path.name, name, id=f"{path.stem}::{name}"))
    return params


@pytest.mark.parametrize("module,name", _collect())
def test_under_micropython(module: str, name: str, tmp_path: Path) -> None:
    env = panel_env()
    env["LB_TMP"] = str(tmp_path)
    result = _run(str(UPY / module), name, env=env)
    assert result.returncode == 0, f"{module}::{name} failed under MicroPython:\n{result.stdout}\n{result.stderr}"
    assert f"PASS {name}" in result.stdout
