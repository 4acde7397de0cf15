"""The simulated store: a real Mosquitto, the concentrator, N panels running
the real firmware under the MicroPython unix port, a POS that sends receipts
over the real UDP and HTTP interfaces, and simulated shoppers who answer (or
not) on the panels. Used by `tools/demo`, the benchmark and the tests."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..service import config as host_config, receipt as receipt_mod
from .broker import Broker, free_port
from .runner import ConcentratorProcess, ConcentratorThread
from .panel import SimPanel, apply_overrides, panel_config

log = logging.getLogger(__name__)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POS_KEY = "simulated-store-shared-key"


def till_ids(n: int) -> list[str]:
    return [str(i) for i in range(1, n + 1)]


def panel_of(till: str) -> str:
    return f"till-{till}"


def write_config(root: Path, store: str, broker_port: int, tills: list[str],
                 catalogue: dict | None = None, timeout_s: int | None = None,
                 **settings) -> Path:
    """concentrator.yaml + catalogue.yaml for a simulated store in `root`.
    The catalogue is the shipped example, with one till per panel."""
    root.mkdir(parents=True, exist_ok=True)
    cat = catalogue or yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    shipped = cat.get("tills") or {}
    cat["tills"] = {}
    for t in tills:
        spec = {"panel": panel_of(t)}
        lang = (shipped.get(t) or {}).get("lang") if isinstance(shipped.get(t), dict) else None
        if lang:
            spec["lang"] = lang  # the shipped example has an English-speaking till
        cat["tills"][t] = spec
    if timeout_s is not None:
        for q in cat["questions"].values():
            q["timeout_s"] = timeout_s
    (root / "catalogue.yaml").write_text(yaml.safe_dump(cat, allow_unicode=True, sort_keys=False))
    cfg = {
        "store": store,
        "catalogue": "catalogue.yaml",
        "database": "records.db",
        "timezone": "UTC",
        "broker": {"host": "127.0.0.1", "port": broker_port},
        "pos": {"bind": "127.0.0.1", "udp_port": free_port(), "http_port": free_port(),
                "key": POS_KEY},
    }
    apply_overrides(cfg, settings)
    path = root / "concentrator.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)  # it holds the POS key, as a store's would
    return path


class Pos:
    """The till software's side: makes receipts and sends them."""

    def __init__(self, store: str, udp_port: int | None, http_port: int | None,
                 key: bytes | None = None, token: str | None = None):
        self.store = store
        self.udp_addr = ("127.0.0.1", udp_port) if udp_port else None
        self.http_url = f"http://127.0.0.1:{http_port}/api/v1/receipts" if http_port else None
        self.key = key
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._seq = 0
        self._lock = threading.Lock()

    def receipt(self, till: str, number: str, loyalty_id: str | None = None,
                **extra) -> dict:
        with self._lock:
            self._seq += 1
            msg_id = f"t{till}-{self._seq}"
        doc = {"v": 1, "type": "receipt", "id": msg_id, "ts": int(time.time()),
               "store": self.store, "till": till, "receipt": number}
        if loyalty_id:
            doc["loyalty_id"] = loyalty_id
        doc.update(extra)
        return doc

    def datagram(self, doc: dict) -> bytes:
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return receipt_mod.sign(body, self.key) if self.key else body

    def send_udp(self, doc: dict) -> None:
        self.sock.sendto(self.datagram(doc), self.udp_addr)

    def send_http(self, doc: dict, timeout: float = 10.0) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return http_post(self.http_url, json.dumps(doc).encode(), headers, timeout)


def http_post(url: str, body: bytes, headers: dict, timeout: float = 10.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@dataclass
class Shoppers:
    """How simulated shoppers behave at a panel. `scores` weighs NPS 0-10;
    CSAT is derived from the same mood. Delays are in seconds."""
    answer_rate: float = 0.8      # the rest walk away (timeout) or decline
    decline_share: float = 0.3    # of those who do not answer, how many press "no thanks"
    scores: dict = field(default_factory=lambda: {10: 25, 9: 25, 8: 15, 7: 10, 6: 8, 5: 6,
                                                  4: 4, 3: 3, 2: 2, 1: 1, 0: 1})
    delay: tuple = (0.6, 2.5)
    why_rate: float = 0.6
    seed: int | None = None

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def value(self, kind: str, options: list | None):
        with self._lock:
            score = self.rng.choices(list(self.scores), list(self.scores.values()))[0]
            pick = self.rng.random()
        if kind == "nps":
            return score
        if kind == "csat":
            return max(1, min(5, round(score / 2.5) + 1)) if score else 1
        if kind == "yesno":
            return "yes" if score >= 7 else "no"
        return options[min(len(options) - 1, int(pick * len(options)))] if options else None

    def react(self, panel: SimPanel, line: dict, question: dict | None = None) -> None:
        """Called with each screen the panel shows."""
        screen = line["ui"]
        if screen == "question":
            with self._lock:
                r = self.rng.random()
                wait = self.rng.uniform(*self.delay)
            if r < self.answer_rate:
                value = self.value(line["kind"], line.get("options"))
                _later(wait, panel.tap, value)
            elif r < self.answer_rate + (1 - self.answer_rate) * self.decline_share:
                _later(wait, panel.send, "decline")
            # else: the shopper walks away; the panel's timeout answers
        elif screen == "why":
            with self._lock:
                n = self.rng.choice([0, 1, 1, 2]) if self.rng.random() < self.why_rate else 0
                picked = self.rng.sample(line["reasons"], min(n, len(line["reasons"])))
                wait = self.rng.uniform(*self.delay)
            _later(wait, panel.send, "reasons " + ",".join(picked))


def _later(delay: float, fn, *args) -> None:
    if delay <= 0:
        fn(*args)
        return
    t = threading.Timer(delay, _touch, (fn,) + args)
    t.daemon = True
    t.start()


def _touch(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass  # the panel died (a fault test killed it) before the shopper's tap


class Store:
    """Starts and stops the parts of a simulated store, in order."""

    def __init__(self, root: Path, panels: int = 3, store: str = "demo-store",
                 timeout_s: int | None = None, concentrator: str = "thread",
                 guard_ms: int | None = None, thanks_s: int | None = None,
                 settle_ms: int | None = None,
                 catalogue: dict | None = None, probe_images: Path | None = None,
                 adverts: bool = False, **settings):
        """adverts: give the store two sample advert pictures and a
        playlist (LVGL panels fetch and show them)."""
        self.root = Path(root)
        self.adverts = None
        if adverts:
            self.adverts = write_sample_adverts(self.root / "host" / "adverts")
            settings.setdefault("adverts__folder", str(self.adverts))
            settings.setdefault("adverts__poll_s", 1)
        self.probe_images = probe_images
        self.probe = None
        if probe_images is not None:
            settings.setdefault("probe__enabled", True)
        self.store_id = store
        self.tills = till_ids(panels)
        self.broker = Broker(self.root / "broker", store=store)
        self.config_path = write_config(self.root / "host", store, self.broker.port, self.tills,
                                        catalogue=catalogue, timeout_s=timeout_s, **settings)
        self.cfg = host_config.load(self.config_path)
        self.mode = concentrator
        self.conc: ConcentratorThread | ConcentratorProcess | None = None
        self.panels: dict[str, SimPanel] = {}
        self._panel_overrides = {}
        if guard_ms is not None:
            self._panel_overrides["question_guard_ms"] = guard_ms
        if thanks_s is not None:
            self._panel_overrides["thanks_s"] = thanks_s
        if settle_ms is not None:
            self._panel_overrides["touch__settle_ms"] = settle_ms
        self.pos = Pos(store, self.cfg.udp_port, self.cfg.http_port, self.cfg.pos_key,
                       self.cfg.pos_token)

    def start(self, on_screen=None, board: str | None = None,
              shots: Path | None = None, sim_panels: bool = True) -> "Store":
        """board: run the panels as LVGL simulators of that board (their
        touches go through LVGL); shots: each saves its current screen to
        shots/<panel>.png as the store runs; sim_panels False: no panels
        (the caller brings its own, e.g. bench/light_panels.py)."""
        self.broker.start()
        for till in self.tills if sim_panels else ():
            pid = panel_of(till)
            cfg = panel_config(pid, self.store_id, self.broker.port,
                               self.root / pid / "outbox", heartbeat_s=3600,
                               **self._panel_overrides)
            panel = SimPanel(self.root / pid, cfg, name=pid, board=board, shots=shots)
            panel.on_screen = on_screen
            self.panels[till] = panel.start()
        for panel in self.panels.values():
            panel.wait_screen("adverts", timeout=20)
        if self.probe_images is not None:
            self._start_probe()
        if self.mode == "process":
            self.conc = ConcentratorProcess(self.config_path, self.root / "host").start()
        else:
            self.conc = ConcentratorThread(self.cfg).start()
        self._wait_panels_online()
        return self

    def _start_probe(self) -> None:
        self.probe = start_probe(self.root / "probe.yaml", self.store_id, self.broker.port,
                                 {t: self.probe_images for t in self.tills}, fps=5,
                                 persist_frames=2, max_age_ms=1000, age_gender=True)

    def _wait_panels_online(self, timeout: float = 20.0) -> None:
        """The concentrator asks only panels it sees online."""
        if self.mode != "thread":
            return
        deadline = time.monotonic() + timeout
        want = {panel_of(t) for t in self.tills}
        while True:
            states = self.conc.call(lambda: dict(self.conc.host.fleet.state))
            if all(states.get(p) == "online" for p in want):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"panels not online at the concentrator: {states}")
            time.sleep(0.05)

    def stop(self) -> None:
        for panel in self.panels.values():
            panel.stop()
        if self.conc:
            self.conc.stop()
        if self.probe:
            self.probe.stop()
        self.broker.stop()


def write_sample_adverts(folder: Path) -> Path:
    """Two made-up advert pictures and a playlist that loops them."""
    from ..adverts.image import sample
    folder.mkdir(parents=True, exist_ok=True)
    sample(960, 600).save(folder / "spring.jpg", quality=90)
    sample(960, 600, title="Свежий хлеб к 8:00", subtitle="Fresh bread every morning").save(
        folder / "bread.png")
    (folder / "playlist.yaml").write_text(yaml.safe_dump({"adverts": [
        {"id": "spring-sale", "file": "spring.jpg", "seconds": 6},
        {"id": "fresh-bread", "file": "bread.png", "seconds": 4}]}, sort_keys=False))
    return folder


def start_probe(path: Path, store: str, broker_port: int, cameras: dict, service=None,
                timeout: float = 30.0, **settings):
    """The real probe service for a simulated store: writes its settings to
    `path` ({till: image folder} as cameras; none means switched off), starts
    it, and returns once it is on the broker with a first estimate."""
    from ..probe import config as probe_config
    from ..probe.service import ProbeService
    doc = {"store": store, "enabled": bool(cameras),
           "broker": {"host": "127.0.0.1", "port": broker_port},
           "cameras": [{"till": t, "source": f"folder:{folder}"} for t, folder in cameras.items()]}
    doc.update(settings)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    probe = (service or ProbeService)(probe_config.load(path))
    probe.start()
    deadline = time.monotonic() + timeout
    while not (probe.connected.is_set() and (not cameras or probe.counters["estimates"])):
        if time.monotonic() > deadline:
            probe.stop()
            raise TimeoutError(f"the probe gave no estimate: {probe.status()}")
        time.sleep(0.05)
    return probe
