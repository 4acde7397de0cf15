"""`tools/package`: the store appliance's Debian package,
dist/loyalty-button_<version>_<arch>.deb, for arm64 (Raspberry Pi OS 64-bit)
or amd64 (Debian 12).

What it carries (docs/install.md):
- /opt/loyalty-button/wheels: the application's wheel and every dependency
  as a wheel for the target (`pip download --platform`), with
  requirements.txt pinning each to its sha256; postinst makes the venv
  from them with `--no-index --require-hashes`, so a store without
  internet installs it. Versions are the ones this checkout's .venv runs
  (its tests ran against them). A dependency published only as source
  (esptool) is built here into a pure-Python wheel.
- /opt/loyalty-button/bundles/<board>: the panels' app bundles, for
  `loyalty-button panels flash` on the host; /opt/loyalty-button/models:
  the emotion probe's model files.
- the systemd units and maintainer scripts of packaging/debian/.

Downloads are cached in $LB_CACHE (outside the clone), keyed on the
requirements and the target."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from lbpanel import boards

from ..cache import cache_dir
from ..panels import bundle
from ..probe import models
from ..service.records import SCHEMA_VERSION
from . import layout

ROOT = Path(__file__).resolve().parents[3]
DEBIAN = ROOT / "packaging" / "debian"
PY = "3.11"
# Debian 12 has glibc 2.36: any manylinux tag up to that runs there.
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
UNITS = ["loyalty-button.service", "loyalty-button-probe.service",
         "loyalty-button-backup.service", "loyalty-button-backup.timer",
         "loyalty-button-broker.path", "loyalty-button-broker.service"]
SCRIPTS = ["preinst", "postinst", "prerm", "postrm"]
DOCS = ["docs/install.md", "docs/broker.md", "docs/installer.md", "docs/concentrator.md",
        "docs/catalogue.md", "docs/probe.md"]


class PackageError(RuntimeError):
    pass


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[str]:
    """What the store host runs: the dependencies and the probe's extra."""
    p = project()
    return list(dict.fromkeys(p["dependencies"] + p["optional-dependencies"]["probe"]))


def constraints() -> list[str]:
    """The versions this checkout's environment runs, as pins."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "==" in line and " @ " not in line]


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, cwd=cwd)


def platform_args(arch: str) -> list[str]:
    machine = ARCHES[arch]
    tags = [f"manylinux2014_{machine}"] + [f"manylinux_2_{n}_{machine}" for n in range(17, 37)]
    return [a for t in tags for a in ("--platform", t)] + [
        "--python-version", PY, "--implementation", "cp", "--abi", "cp311",
        "--abi", "abi3", "--abi", "none", "--only-binary=:all:"]


def gather_wheels(arch: str, out=print) -> Path:
    """Every dependency as a wheel for `arch`, in a cache folder."""
    reqs, pins = requirements(), constraints()
    key = hashlib.sha256("\n".join([arch, PY, *reqs, *pins]).encode()).hexdigest()[:16]
    folder = cache_dir() / "deb-wheels" / f"{arch}-{key}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pins_file = folder / "constraints.txt"
    pins_file.write_text("\n".join(pins) + "\n")
    built = folder / "built"
    built.mkdir(exist_ok=True)
    for _ in range(10):
        done = _pip("download", "-q", "-d", str(folder), "-c", str(pins_file),
                    "--find-links", str(built), *platform_args(arch), *reqs)
        if done.returncode == 0:
            (folder / ".complete").touch()
            return folder
        # Published only as source: build it here if it is pure Python.
        m = re.search(r"(?:No matching distribution found for|Cannot install) ([A-Za-z0-9_.\-]+)",
                      done.stderr)
        if not m:
            raise PackageError(f"pip download for {arch} failed:\n{done.stderr[-2000:]}")
        name = m.group(1)
        pin = next((p for p in pins if p.lower().split("==")[0].replace("_", "-")
                    == name.lower().replace("_", "-")), name)
        out(f"[package] {pin}: no wheel on the registry; building a pure-Python one")
        made = _pip("wheel", "-q", "--no-deps", "-w", str(built), pin)
        if made.returncode != 0:
            raise PackageError(f"cannot build a wheel of {pin}:\n{made.stderr[-2000:]}")
        for whl in built.glob("*.whl"):
            if not whl.name.endswith("-none-any.whl"):
                raise PackageError(f"{whl.name} is not pure Python: it cannot go into "
                                   f"the {arch} package from here")
    raise PackageError("pip download kept failing; see above")


def build(arch: str, version: str | None = None, dist: Path = ROOT / "dist", out=print) -> Path:
    if arch not in ARCHES:
        raise PackageError(f"arch {arch!r}: one of {', '.join(ARCHES)}")
    version = version or project()["version"]
    if not re.match(r"^[0-9][A-Za-z0-9.+~-]*$", version):
        raise PackageError(f"version {version!r} is not a Debian version")
    model_dir = models.default_dir()
    if models.missing(model_dir):
        raise PackageError(f"the probe's model files are missing in {model_dir} "
                           f"(tools/bootstrap fetches them)")
    stage = ROOT / "build" / "deb" / arch
    shutil.rmtree(stage, ignore_errors=True)
    opt = stage / str(layout.OPT).lstrip("/")
    wheels = opt / "wheels"
    wheels.mkdir(parents=True)
    out(f"[package] wheels for {arch}")
    cached = gather_wheels(arch, out)
    for whl in list(cached.glob("*.whl")) + list((cached / "built").glob("*.whl")):
        shutil.copy2(whl, wheels)
    # The application itself, at this version.
    own = _pip("wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT))
    if own.returncode != 0:
        raise PackageError(f"cannot build the application's wheel:\n{own.stderr[-2000:]}")
    lines = []
    for whl in sorted(wheels.glob("*.whl")):
        name, ver = whl.name.split("-")[:2]
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{name}=={ver} --hash=sha256:{digest}")
    (wheels / "requirements.txt").write_text("\n".join(lines) + "\n")
    out("[package] panel bundles and probe models")
    for board in sorted(boards.BOARDS):
        bundle.build(board, opt / "bundles")
    shutil.copytree(model_dir, opt / "models",
                    ignore=shutil.ignore_patterns(".*", "*.tmp"))
    units = stage / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy2(DEBIAN / unit, units / unit)
    doc = stage / "usr" / "share" / "doc" / "loyalty-button"
    doc.mkdir(parents=True)
    for name in DOCS:
        shutil.copy2(ROOT / name, doc / Path(name).name)
    (stage / "usr" / "bin").mkdir(parents=True)
    os.symlink(layout.OPT / "venv" / "bin" / "loyalty-button", stage / "usr/bin/loyalty-button")
    control = stage / "DEBIAN"
    control.mkdir()
    size_kib = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file()) // 1024
    subst = {"@VERSION@": version, "@ARCH@": arch, "@SIZE_KIB@": str(size_kib),
             "@SCHEMA@": str(SCHEMA_VERSION)}
    for name in ["control.in", *SCRIPTS]:
        text = (DEBIAN / name).read_text()
        for k, v in subst.items():
            text = text.replace(k, v)
        target = control / name.removesuffix(".in")
        target.write_text(text)
        target.chmod(0o755 if name in SCRIPTS else 0o644)
    for path in stage.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
        elif path.is_dir():
            path.chmod(0o755)
    dist.mkdir(parents=True, exist_ok=True)
    deb = dist / f"loyalty-button_{version}_{arch}.deb"
    # Wheels are compressed already: gzip at a low level costs little.
    done = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build",
                           str(stage), str(deb)], capture_output=True, text=True)
    if done.returncode != 0:
        raise PackageError(f"dpkg-deb failed: {done.stderr.strip()}")
    out(f"[package] {deb.name}: {deb.stat().st_size / 1e6:.1f} MB "
        f"({len(lines)} wheels, installed {size_kib / 1024:.0f} MiB before the venv)")
    return deb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/package", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default=None,
                   help="amd64 or arm64 (default: this machine's); repeat with 'all' for both")
    p.add_argument("--version", help="the package version (default: pyproject's)")
    p.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = p.parse_args(argv)
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "amd64")
    arches = list(ARCHES) if args.arch == "all" else [args.arch or native]
    try:
        debs = [build(arch, args.version, args.dist, out=lambda m: print(m, file=sys.stderr))
                for arch in arches]
    except PackageError as e:
        print(f"tools/package: {e}", file=sys.stderr)
        return 2
    for deb in debs:
        print(deb)  # the last line is the package's path
    return 0


if __name__ == "__main__":
    sys.exit(main())
