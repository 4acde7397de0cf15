"""Updating the store's panels over the air (docs/ota.md):

    loyalty-button panels update --config concentrator.yaml --bundle 0.2.0
                                 [--canary N] [--tills 1,2] [--timeout S]

The host serves the app bundles (`panels.bundles`/<board>-<version>/) at
/bundles/ on its POS HTTP listener. Each panel gets an `update` command with
the bundle's URL, its manifest's sha256 and the store's signature over them
(HMAC-SHA256 with the key every panel.json carries). A panel downloads into
its spare slot, checks every file and reboots into a trial; it is confirmed
when it answers the `health` command sent here once it is back on the
broker. The first N panels (the canary) go first; when one of them fails,
the others are not touched."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lbpanel import protocol
from lbpanel.ota import health_text, update_text

from ..service import broker_access
from . import bundle as bundles
from .registry import Registry, RegistryError
from .station import StatusWatch, StepFailed


def sign(key_hex: str, text: bytes) -> str:
    """The store's signature over one of lbpanel.ota's signed lines."""
    return hmac.new(bytes.fromhex(key_hex), text, hashlib.sha256).hexdigest()


_last_seq = 0
_seq_lock = threading.Lock()


def next_seq() -> int:
    """The host's sequence for signed commands: milliseconds since 1970,
    always above the one before (a panel takes only a higher one than the
    last it took)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(int(time.time() * 1000), _last_seq + 1)
        return _last_seq


@dataclass
class Target:
    panel_id: str
    till: str
    board: str
    result: str = "waiting"   # waiting, sent, downloading, trial, ok, failed, skipped
    what: str = ""
    seconds: float = 0.0
    fw: str = ""
    sent_at: float = 0.0
    first_sent: float = 0.0
    health_at: float = 0.0
    seqs: list = field(default_factory=list)  # of the update commands sent it


class Rollout:
    def __init__(self, registry: Registry, version: str, canary: int = 1,
                 timeout_s: float = 600.0, out=print, downgrade: bool = False):
        self.reg = registry
        self.cfg = registry.cfg
        self.version = version
        self.downgrade = downgrade  # signed: a panel refuses an older version without it
        self.canary = canary
        self.timeout_s = timeout_s
        self.out = out
        self.watch: StatusWatch | None = None
        self._cond = threading.Condition()

    # --- what goes out --------------------------------------------------------
    def url_base(self) -> str:
        cfg = self.cfg
        if not cfg.http_port:
            raise RegistryError("panels fetch updates from the POS HTTP listener: set "
                                "pos.http_port")
        return f"http://{cfg.panels_broker_host}:{cfg.http_port}/bundles/"

    def bundle_dir(self, board: str) -> Path:
        return Path(self.cfg.panels_bundles) / f"{board}-{self.version}"

    def command(self, target: Target) -> dict:
        folder = self.bundle_dir(target.board)
        manifest_sha = bundles.sha256_file(folder / bundles.MANIFEST)
        msg = protocol.envelope("cmd", protocol.new_id(), int(time.time()), self.cfg.store,
                                target.panel_id)
        seq = next_seq()
        msg.update({"cmd": "update", "version": self.version,
                    "url": f"{self.url_base()}{folder.name}/", "sha256": manifest_sha,
                    "downgrade": self.downgrade, "seq": seq,
                    "sig": sign(self.reg.ota_key(), update_text(
                        self.cfg.store, target.panel_id, target.board, self.version,
                        manifest_sha, self.downgrade, seq))})
        protocol.validate(msg)
        return msg

    def health(self, target: Target) -> dict:
        """The check that confirms a trial, signed for this panel and version."""
        msg = protocol.envelope("cmd", protocol.new_id(), int(time.time()), self.cfg.store,
                                target.panel_id)
        seq = next_seq()
        msg.update({"cmd": "health", "seq": seq, "sig": sign(self.reg.ota_key(), health_text(
            self.cfg.store, target.panel_id, self.version, seq))})
        protocol.validate(msg)
        return msg

    def plan(self, tills: list[str] | None) -> list[Target]:
        panels = self.reg.load()
        if tills:
            unknown = [t for t in tills if f"till-{t}" not in panels]
            if unknown:
                raise RegistryError(f"no panel registered for till {', '.join(unknown)}")
        targets = [Target(pid, e["till"], e["board"]) for pid, e in sorted(panels.items())
                   if not tills or e["till"] in tills]
        if not targets:
            raise RegistryError("no panels registered: 'loyalty-button panels add' first")
        for board in sorted({t.board for t in targets}):
            folder = self.bundle_dir(board)
            try:
                manifest = bundles.load(folder)
            except bundles.BundleError as e:
                raise RegistryError(f"no {board} bundle of {self.version} in "
                                    f"{self.cfg.panels_bundles} ({e}); build it with "
                                    f"'loyalty-button panels bundle --board {board} --out "
                                    f"{self.cfg.panels_bundles}'") from None
            if manifest["version"] != self.version:
                raise RegistryError(f"{folder} holds version {manifest['version']}")
        return targets

    # --- the broker -----------------------------------------------------------
    def connect(self) -> None:
        user, password = self.reg.installer_login()
        # A store set up before roll-outs existed has the older ACL, in
        # which the installer may not send commands.
        if self.cfg.panels_acl_file and broker_access.write_acl(
                self.cfg.panels_acl_file, self.cfg.store, self.cfg.broker_user or "host"):
            self.reg.reload_broker()
            time.sleep(0.5)
        try:
            self.watch = StatusWatch(self.cfg, user, password).start()
        except StepFailed as e:
            raise RegistryError(f"{e.what}; {e.hint}") from None
        self._cond = self.watch._cond

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()

    @property
    def status(self) -> dict[str, dict]:
        """Each panel's newest status, retained or live."""
        return {p: m for p, (_, m) in self.watch.newest.items()}

    def _arrived(self, panel: str) -> float:
        return self.watch.newest.get(panel, (0.0, None))[0]

    def _send(self, panel_id: str, msg: dict) -> None:
        self.watch.send(panel_id, "cmd", msg)

    # --- the roll-out ---------------------------------------------------------
    def _step(self, t: Target, started: float) -> None:
        """Move one panel on from what its newest status says."""
        st = self.status.get(t.panel_id) or {}
        online = st.get("state") == "online"
        ota = st.get("ota") or {}
        t.fw = st.get("fw") or t.fw
        now = time.monotonic()
        fresh = t.first_sent and self._arrived(t.panel_id) > t.first_sent
        # A refusal names the command it answers: one of an earlier run,
        # still in the status, is not this run's.
        ours = ota.get("seq") in t.seqs if ota.get("state") == "failed" else True
        if fresh and ours and ota.get("version") == self.version and \
                ota.get("state") in ("failed", "rolled_back"):
            t.result, t.what = "failed", f"{ota['state'].replace('_', ' ')}: {ota.get('reason')}"
        elif online and st.get("fw") == self.version and ota.get("state") == "ok":
            t.result = "ok"
        elif online and st.get("fw") == self.version and ota.get("state") == "trial":
            t.result = "trial"
            if now - t.health_at > 5:  # until it answers; a command may be lost
                t.health_at = now
                self._send(t.panel_id, self.health(t))
        elif online and not ota:
            t.result, t.what = "failed", ("this panel's firmware has no update slots: "
                                          "flash it once over USB")
        elif online and ota.get("state") in ("downloading", "switching"):
            t.result = ota["state"]
        elif online and ota.get("state") == "trial":
            t.result, t.what = "failed", "another update is on trial there"
        elif online and now - t.sent_at > 20:
            # Not started (a command sent while it was offline is lost): again.
            t.sent_at = now
            t.first_sent = t.first_sent or now
            t.result = "sent"
            cmd = self.command(t)
            t.seqs.append(cmd["seq"])
            self._send(t.panel_id, cmd)
        if t.result in ("ok", "failed"):
            t.seconds = now - (t.first_sent or started)

    def _run_group(self, group: list[Target]) -> None:
        started = time.monotonic()
        for t in group:
            t.result = "sent"
            t.sent_at = 0.0  # sent by the first step once it is online
        deadline = started + self.timeout_s
        shown: dict[str, str] = {}
        while True:
            with self._cond:
                for t in group:
                    if t.result not in ("ok", "failed"):
                        self._step(t, started)
                    line = t.result + (f" {t.what}" if t.what else "")
                    if shown.get(t.panel_id) != line:
                        shown[t.panel_id] = line
                        self.out(f"till {t.till} {t.panel_id}: {line}")
                if all(t.result in ("ok", "failed") for t in group):
                    return
                if time.monotonic() > deadline:
                    for t in group:
                        if t.result not in ("ok", "failed"):
                            st = self.status.get(t.panel_id) or {}
                            t.result, t.seconds = "failed", self.timeout_s
                            t.what = (f"not confirmed within {self.timeout_s:.0f} s (last: "
                                      f"{st.get('state', 'never seen')}, fw {st.get('fw')}, "
                                      f"update {json.dumps(st.get('ota'))})")
                    return
                self._cond.wait(0.5)

    def run(self, targets: list[Target]) -> bool:
        """Update `targets`, canary first. True when every one is on the
        version."""
        time.sleep(1.0)  # the retained statuses arrive
        with self._cond:
            todo = []
            for t in targets:
                st = self.status.get(t.panel_id) or {}
                t.fw = st.get("fw") or ""
                if st.get("fw") == self.version and (st.get("ota") or {}).get("state") == "ok":
                    t.result, t.what, t.fw = "ok", "already on this version", self.version
                else:
                    todo.append(t)
        groups = [todo[:self.canary], todo[self.canary:]] if self.canary else [todo]
        for n, group in enumerate(g for g in groups if g):
            self._run_group(group)
            if n == 0 and self.canary and any(t.result == "failed" for t in group):
                for t in todo[self.canary:]:
                    t.result, t.what = "skipped", "not updated: the canary failed"
                self.out("the canary failed: the roll-out stops here")
                return False
        return all(t.result == "ok" for t in targets)
