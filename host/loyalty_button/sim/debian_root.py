"""A clean Debian system to install the appliance package into, for the
install test (tests/test_install.py): a root of a release (bookworm, trixie)
and an architecture (amd64; arm64 runs under qemu-user through the
kernel's binfmt_misc, as Debian's qemu-user-static registers it) made by
`mmdebstrap` (minbase plus systemd, as on a Raspberry Pi OS Lite card),
cached as a tarball outside the clone, unpacked per test and entered with
`chroot`.

systemd cannot run as PID 1 here, so a unit is "started" the way systemd
would start it: its own ExecStartPre and ExecStart lines, as its User and
Group, with its Environment, inside the root. The root shares this
machine's network, so services are given free loopback ports."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..cache import cache_dir

MIRROR = "http://deb.debian.org/debian"
# The machine's architecture as Debian names it, and the binfmt_misc entry
# that runs each foreign one.
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "amd64")
BINFMT = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# What a Raspberry Pi OS Lite card has that minbase lacks and the package
# does not pull in: systemd (units, systemd-analyze) and CA certificates.
INCLUDE = ["systemd", "ca-certificates"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RootError(RuntimeError):
    pass


def binfmt_interpreter(arch: str) -> Path | None:
    """The emulator the kernel runs a foreign architecture's programs with,
    when registered and enabled (None: native, or not registered)."""
    if arch == NATIVE:
        return None
    try:
        lines = (BINFMT_DIR / BINFMT[arch]).read_text().splitlines()
    except (OSError, KeyError):
        return None
    if "enabled" not in lines:
        return None
    return next((Path(line.split(None, 1)[1]) for line in lines
                 if line.startswith("interpreter ")), None)


def usable(arch: str = NATIVE) -> str | None:
    """Why a Debian root of `arch` cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (chroot, mknod, apt inside the root)"
    for tool in ("mmdebstrap", "chroot", "dpkg-deb"):
        if not shutil.which(tool):
            return f"{tool} is missing (tools/bootstrap installs it)"
    if arch != NATIVE:
        if not shutil.which("arch-test"):
            return "arch-test is missing (tools/bootstrap installs it)"
        if binfmt_interpreter(arch) is None:
            return (f"the kernel cannot run {arch} programs: {BINFMT_DIR}/{BINFMT.get(arch)} "
                    f"is not registered (tools/bootstrap installs qemu-user-static and "
                    f"enables it)")
    return None


def tarball(suite: str, arch: str = NATIVE, extra: tuple[str, ...] = ()) -> Path:
    """The cached root tarball, made the first time (amd64 about a minute,
    arm64 under qemu about three). extra: more Debian packages in it."""
    include = [*INCLUDE, *extra]
    path = cache_dir() / "rootfs" / f"{suite}-{arch}-minbase-{'-'.join(include)}.tar.zst"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.tar.zst")
    done = subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", f"--arch={arch}",
                           f"--include={','.join(include)}", suite, str(tmp), MIRROR],
                          capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RootError(f"mmdebstrap failed: {done.stderr[-2000:]}")
    tmp.replace(path)
    return path


class Unit:
    """What systemd would run for a unit file."""

    def __init__(self, text: str):
        self.pre: list[list[str]] = []
        self.start: list[str] = []
        self.user = self.group = None
        self.env: dict[str, str] = {}
        self.keys: dict[str, list[str]] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            self.keys.setdefault(key, []).append(value)
            if key == "ExecStartPre":
                self.pre.append(shlex.split(value.lstrip("-+!")))
            elif key == "ExecStart":
                self.start = shlex.split(value.lstrip("-+!@"))
            elif key == "User":
                self.user = value
            elif key == "Group":
                self.group = value
            elif key == "Environment":
                for item in shlex.split(value):
                    k, _, v = item.partition("=")
                    self.env[k] = v


class DebianRoot:
    def __init__(self, path: Path, suite: str = "bookworm", arch: str = NATIVE,
                 extra: tuple[str, ...] = ()):
        """extra: Debian packages the cached root has already (an emulated
        root's apt run of python3 and the rest takes minutes)."""
        self.path = Path(path)
        self.suite = suite
        self.arch = arch
        self.extra = tuple(extra)
        self.procs: list[subprocess.Popen] = []
        self._mounted = False

    def make(self) -> "DebianRoot":
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "--zstd", "-xf", str(tarball(self.suite, self.arch, self.extra)),
                        "-C", str(self.path)], check=True)
        shutil.copy2("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        emulator = binfmt_interpreter(self.arch)
        if emulator is not None:
            # Registered without the "fix binary" flag, the kernel looks for
            # the emulator inside the chroot, at the same path.
            inside = self.file(str(emulator))
            if not inside.exists():
                inside.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(emulator.resolve(), inside)
        subprocess.run(["mount", "-t", "proc", "proc", str(self.path / "proc")], check=True)
        self._mounted = True
        return self

    def close(self) -> None:
        for proc in list(self.procs):  # stop() takes each off the list
            self.stop(proc)
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.path / "proc")], check=False)
            self._mounted = False

    # --- running things inside ---------------------------------------------------
    def _argv(self, argv: list[str], user: str | None = None, group: str | None = None,
              env: dict | None = None) -> list[str]:
        spec = [f"--userspec={user}:{group or user}"] if user else []
        clean = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        return ["chroot", *spec, str(self.path), "/usr/bin/env", "-i",
                *[f"{k}={v}" for k, v in clean.items()], *argv]

    def run(self, argv: list[str], user: str | None = None, check: bool = True,
            input: str | None = None, env: dict | None = None, group: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run(self._argv(argv, user, group, env), capture_output=True,
                              text=True, input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise RootError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.run(["/bin/sh", "-c", script], **kw)

    def apt_install(self, deb: Path, check: bool = True,
                    downgrade: bool = False) -> subprocess.CompletedProcess:
        inside = Path("/tmp") / deb.name
        shutil.copy2(deb, self.path / inside.relative_to("/"))
        extra = " --allow-downgrades" if downgrade else ""
        return self.sh("apt-get update -qq && apt-get install -y -qq --no-install-recommends"
                       f"{extra} {inside}", env={"DEBIAN_FRONTEND": "noninteractive"},
                       check=check)

    def unit(self, name: str) -> Unit:
        for folder in ("lib/systemd/system", "usr/lib/systemd/system", "etc/systemd/system"):
            path = self.path / folder / name
            if path.exists():
                return Unit(path.read_text())
        raise RootError(f"no unit {name} in {self.path}")

    def start_unit(self, name: str, log: Path,
                   change: dict[str, str] | None = None) -> subprocess.Popen:
        """The unit's ExecStartPre lines (as root, as systemd runs them
        before dropping privileges only when told), then its ExecStart as
        its User, in the background; output to `log`. `change`: words of
        the ExecStart line replaced (a fixed port, on a shared machine)."""
        unit = self.unit(name)
        for argv in unit.pre:
            self.run(argv)
        out = open(log, "ab")
        start = [(change or {}).get(word, word) for word in unit.start]
        proc = subprocess.Popen(self._argv(start, unit.user, unit.group, unit.env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run_unit(self, name: str, check: bool = True) -> subprocess.CompletedProcess:
        """A oneshot unit: its ExecStart, to the end."""
        unit = self.unit(name)
        return self.run(unit.start, unit.user, check, env=unit.env, group=unit.group)

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> int | None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # systemd's KillMode=control-group, roughly
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def file(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def wait_file(self, path: str, timeout: float = 30) -> Path:
        target = self.file(path)
        deadline = time.monotonic() + timeout
        while not target.exists():
            if time.monotonic() > deadline:
                raise RootError(f"{path} did not appear in {timeout:.0f} s")
            time.sleep(0.1)
        return target
