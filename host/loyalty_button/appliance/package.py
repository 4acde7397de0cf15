"""`tools/package`: the store appliance's Debian packages, one per Debian
release, as their wheels are built for that release's Python:
dist/loyalty-button_<version>+deb13_<arch>.deb for Debian 13 "trixie"
(Python 3.13; today's Raspberry Pi OS) and +deb12 for Debian 12
"bookworm" (Python 3.11), each for arm64 (a Raspberry Pi with a 64-bit OS)
or amd64. The package refuses a system it was not built for before
anything is unpacked (preinst), with a sentence naming the right one.

What it carries (docs/install.md):
- /opt/loyalty-button/wheels: the application's wheel and every dependency
  as a wheel for the target (`pip download --platform`), with
  requirements.txt pinning each to its sha256; postinst makes the venv
  from them with `--no-index --require-hashes`, so a store without
  internet installs it, with the pip wheel in /opt/loyalty-button/installer
  (run from the wheel: the venv has no pip). Versions are the ones this checkout's .venv runs
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
import tempfile
import tomllib
from pathlib import Path

from lbpanel import boards

from ..cache import cache_dir
from ..panels import bundle, firmware_build
from ..probe import models
from ..service.records import SCHEMA_VERSION
from . import layout

ROOT = Path(__file__).resolve().parents[3]
DEBIAN = ROOT / "packaging" / "debian"
# What each Debian release runs the application with: its python3, and its
# glibc (any manylinux tag up to it runs there).
RELEASES = {
    "bookworm": {"debian": "12", "python": "3.11", "glibc": 36},
    "trixie": {"debian": "13", "python": "3.13", "glibc": 41},
}
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
# The pip postinst runs from its wheel (not installed in the venv: making
# a venv with pip byte-compiles pip's own files, minutes on a Pi's SD card).
INSTALLER_PIP = "pip==25.3"
UNITS = ["loyalty-button.service", "loyalty-button-probe.service",
         "loyalty-button-backup.service", "loyalty-button-backup.timer",
         "loyalty-button-broker.path", "loyalty-button-broker.service",
         "loyalty-button-central@.service"]
SCRIPTS = ["preinst", "postinst", "prerm", "postrm"]
DOCS = ["docs/install.md", "docs/broker.md", "docs/installer.md", "docs/concentrator.md",
        "docs/catalogue.md", "docs/probe.md", "docs/central.md"]


class PackageError(RuntimeError):
    pass


def debian_dependencies() -> list[str]:
    """The Debian packages this package needs, by name (control.in's
    Pre-Depends)."""
    for line in (DEBIAN / "control.in").read_text().splitlines():
        if line.startswith("Pre-Depends:"):
            return [item.split()[0] for item in line.split(":", 1)[1].split(",")]
    raise PackageError("packaging/debian/control.in has no Pre-Depends line")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[str]:
    """What the store host runs: the dependencies and the probe's extra;
    and the central service's, for the chain's own host (docs/central.md)."""
    p = project()
    extra = p["optional-dependencies"]
    return list(dict.fromkeys(p["dependencies"] + extra["probe"] + extra["central"]))


def constraints() -> list[str]:
    """The versions this checkout's environment runs, as pins."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "==" in line and " @ " not in line]


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, cwd=cwd)


def platform_args(arch: str, release: str) -> list[str]:
    machine, rel = ARCHES[arch], RELEASES[release]
    tags = [f"manylinux2014_{machine}"] + [f"manylinux_2_{n}_{machine}"
                                           for n in range(17, rel["glibc"] + 1)]
    return [a for t in tags for a in ("--platform", t)] + [
        "--python-version", rel["python"], "--implementation", "cp",
        "--abi", "cp" + rel["python"].replace(".", ""),
        "--abi", "abi3", "--abi", "none", "--only-binary=:all:"]


def deb_version(version: str, release: str) -> str:
    """The package's version: the application's, and the Debian release it
    is built for, so that a user can tell the files apart and an OS upgrade
    from 12 to 13 sorts the +deb13 package after the +deb12 one."""
    return f"{version}+deb{RELEASES[release]['debian']}"


def gather_wheels(arch: str, release: str, out=print) -> Path:
    """Every dependency as a wheel for `arch` and the release's Python, in a
    cache folder."""
    reqs, pins = requirements(), constraints()
    py = RELEASES[release]["python"]
    key = hashlib.sha256("\n".join([arch, py, INSTALLER_PIP, *reqs, *pins]).encode()
                         ).hexdigest()[:16]
    folder = cache_dir() / "deb-wheels" / f"{arch}-py{py}-{key}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pins_file = folder / "constraints.txt"
    pins_file.write_text("\n".join(pins) + "\n")
    built = folder / "built"
    built.mkdir(exist_ok=True)
    for _ in range(10):
        done = _pip("download", "-q", "-d", str(folder), "-c", str(pins_file),
                    "--find-links", str(built), *platform_args(arch, release), *reqs)
        if done.returncode == 0:
            pip = _pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                       str(folder / "installer"), INSTALLER_PIP)
            if pip.returncode != 0:
                raise PackageError(f"pip download {INSTALLER_PIP} failed:\n{pip.stderr[-2000:]}")
            (folder / ".complete").touch()
            return folder
        # Published only as source: build it here if it is pure Python.
        m = re.search(r"(?:No matching distribution found for|Cannot install) ([A-Za-z0-9_.\-]+)",
                      done.stderr)
        if not m:
            raise PackageError(f"pip download for {arch}, Python {py} failed:\n"
                               f"{done.stderr[-2000:]}")
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


def changelog(version: str, release: str) -> bytes:
    """The package's changelog (Debian's format, gzipped without a time
    stamp so that two builds of one commit are the same file): the version,
    the release and the commit it was built from."""
    import email.utils
    import gzip
    commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h"],
                            capture_output=True, text=True).stdout.strip() or "an unknown commit"
    when = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                          capture_output=True, text=True).stdout.strip()
    stamp = email.utils.formatdate(int(when) if when.isdigit() else 0)
    text = (f"loyalty-button ({version}) {release}; urgency=medium\n\n"
            f"  * Built from commit {commit}.\n"
            f"  * What changed: the project's history (git log).\n\n"
            f" -- Loyalty Button <support@loyalty-button.invalid>  {stamp}\n")
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def versioned_source(dest: Path, version: str) -> Path:
    """The application's sources copied to `dest`, saying `version` in every
    place the application and the panel firmware read it (pyproject, the
    host package, lbpanel): a package built with --version carries that
    version inside, not only in its file name."""
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / part, dest / part)
    shutil.copytree(ROOT / "host", dest / "host",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "firmware" / "lbpanel", dest / "firmware" / "lbpanel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path, key in ((dest / "pyproject.toml", "version"),
                      (dest / "host/loyalty_button/__init__.py", "__version__")):
        text, n = re.subn(rf'^{key} = ".*"$', f'{key} = "{version}"', path.read_text(),
                          count=1, flags=re.M)
        if n != 1:
            raise PackageError(f"{path.relative_to(dest)} has no '{key} = \"...\"' line")
        path.write_text(text)
    (dest / "firmware/lbpanel/__init__.py").write_text(firmware_build.versioned_init(version))
    return dest


def build(arch: str, version: str | None = None, dist: Path = ROOT / "dist", out=print,
          release: str = "trixie") -> Path:
    if arch not in ARCHES:
        raise PackageError(f"arch {arch!r}: one of {', '.join(ARCHES)}")
    if release not in RELEASES:
        raise PackageError(f"release {release!r}: one of {', '.join(RELEASES)}")
    version = version or project()["version"]
    if not re.match(r"^[0-9][A-Za-z0-9.+~-]*$", version):
        raise PackageError(f"version {version!r} is not a Debian version")
    model_dir = models.default_dir()
    if models.missing(model_dir):
        raise PackageError(f"the probe's model files are missing in {model_dir} "
                           f"(tools/bootstrap fetches them)")
    stage = ROOT / "build" / "deb" / f"{release}-{arch}"
    shutil.rmtree(stage, ignore_errors=True)
    opt = stage / str(layout.OPT).lstrip("/")
    wheels = opt / "wheels"
    wheels.mkdir(parents=True)
    out(f"[package] wheels for {arch}, Debian {RELEASES[release]['debian']} ({release}), "
        f"Python {RELEASES[release]['python']}")
    cached = gather_wheels(arch, release, out)
    for whl in list(cached.glob("*.whl")) + list((cached / "built").glob("*.whl")):
        shutil.copy2(whl, wheels)
    (opt / "installer").mkdir()
    for whl in (cached / "installer").glob("pip-*.whl"):
        shutil.copy2(whl, opt / "installer" / whl.name)
    # The application itself, at this version.
    with tempfile.TemporaryDirectory(prefix="lb-app-") as tmp:
        own = _pip("wheel", "-q", "--no-deps", "-w", str(wheels),
                   str(versioned_source(Path(tmp), version)))
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
        bundle.build(board, opt / "bundles", version)
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
    shutil.copy2(DEBIAN / "copyright", doc / "copyright")
    (doc / "changelog.gz").write_bytes(changelog(deb_version(version, release), release))
    overrides = stage / "usr" / "share" / "lintian" / "overrides"
    overrides.mkdir(parents=True)
    shutil.copy2(DEBIAN / "lintian-overrides", overrides / "loyalty-button")
    (stage / "usr" / "bin").mkdir(parents=True)
    os.symlink(layout.OPT / "venv" / "bin" / "loyalty-button", stage / "usr/bin/loyalty-button")
    control = stage / "DEBIAN"
    control.mkdir()
    size_kib = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file()) // 1024
    rel = RELEASES[release]
    subst = {"@VERSION@": deb_version(version, release), "@ARCH@": arch,
             "@SIZE_KIB@": str(size_kib), "@SCHEMA@": str(SCHEMA_VERSION),
             "@RELEASE@": release, "@DEBIAN@": rel["debian"], "@PYTHON@": rel["python"]}
    for name in ["control.in", *SCRIPTS]:
        text = (DEBIAN / name).read_text()
        if name == "control.in":  # its comments are for us, not for dpkg
            text = "".join(line for line in text.splitlines(keepends=True)
                           if not line.startswith("#"))
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
    deb = dist / f"loyalty-button_{deb_version(version, release)}_{arch}.deb"
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
                   help="amd64 or arm64 (default: this machine's), or 'all' for both")
    p.add_argument("--release", default="trixie",
                   help="the Debian release the package is for: trixie (Debian 13, today's "
                        "Raspberry Pi OS; the default), bookworm (Debian 12), or 'all'")
    p.add_argument("--version", help="the package version (default: pyproject's)")
    p.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = p.parse_args(argv)
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "amd64")
    arches = list(ARCHES) if args.arch == "all" else [args.arch or native]
    releases = list(RELEASES) if args.release == "all" else [args.release]
    try:
        debs = [build(arch, args.version, args.dist, out=lambda m: print(m, file=sys.stderr),
                      release=release)
                for release in releases for arch in arches]
    except PackageError as e:
        print(f"tools/package: {e}", file=sys.stderr)
        return 2
    for deb in debs:
        print(deb)  # the last line is the package's path
    return 0


if __name__ == "__main__":
    sys.exit(main())
