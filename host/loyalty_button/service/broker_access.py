"""The store broker's access files, kept by the host: the ACL the project
gives Mosquitto (docs/protocol.md), one login at a time in its password file
(`mosquitto_passwd`: the other entries stay as they are), and a reload by
SIGHUP through Mosquitto's pid_file, after which Mosquitto reads both files
again and keeps every connection."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from ..settings import private


class AccessError(RuntimeError):
    pass


INSTALLER_USER = "installer"


def acl_text(store: str, host_user: str, probe_user: str = "probe") -> str:
    """Each panel logs in with its panel id as user name and may touch only
    its own topics; the host user may touch everything of the store; the
    emotion probe's user only its three topics; the installer's station
    may read the panels' status and send them commands (docs/protocol.md)."""
    root = f"lb/v1/{store}"
    return "\n".join([
        f"user {host_user}",
        f"topic readwrite {root}/#",
        "",
        f"user {INSTALLER_USER}",
        f"topic read {root}/panel/+/status",
        # Roll-outs: `panels update` sends update and health commands.
        f"topic write {root}/panel/+/cmd",
        "",
        f"user {probe_user}",
        f"topic read {root}/probe/request",
        f"topic write {root}/probe/estimate",
        f"topic write {root}/probe/status",
        "",
        "# every other user is a panel whose user name is its panel id",
        f"pattern read {root}/panel/%u/question",
        f"pattern read {root}/panel/%u/ack",
        f"pattern read {root}/panel/%u/config",
        f"pattern read {root}/panel/%u/cmd",
        f"pattern read {root}/panel/%u/adverts",
        f"pattern write {root}/panel/%u/answer",
        f"pattern readwrite {root}/panel/%u/status",
        "",
    ])


def _passwd_tool() -> str:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        raise AccessError("mosquitto_passwd is missing: apt-get install mosquitto")
    return tool


def set_login(password_file: Path, user: str, password: str | None) -> None:
    """Add (or change) one login, or delete it (password None)."""
    pw_file = Path(password_file)
    pw_file.parent.mkdir(parents=True, exist_ok=True)
    if not pw_file.exists():
        pw_file.touch()
        private(pw_file, 0o600)
    if password is None:
        args = [_passwd_tool(), "-D", str(pw_file), user]
    else:
        args = [_passwd_tool(), "-b", str(pw_file), user, password]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise AccessError(f"mosquitto_passwd on {pw_file} failed: "
                          f"{(done.stderr or done.stdout).strip()}")


def write_acl(acl_file: Path, store: str, host_user: str) -> bool:
    """The project's ACL in acl_file, when it is not there already.
    Returns True when the file was written."""
    acl = Path(acl_file)
    want = acl_text(store, host_user)
    if acl.exists() and acl.read_text() == want:
        return False
    acl.parent.mkdir(parents=True, exist_ok=True)
    acl.write_text(want)
    private(acl, 0o640)  # who may do what is nobody else's business
    return True


def reload(pid_file: Path | None) -> str:
    """SIGHUP to Mosquitto; returns what was done."""
    if not pid_file:
        return ("no panels.broker_pid_file: reload Mosquitto yourself "
                "(systemctl reload mosquitto) for the change to take effect")
    try:
        pid = int(Path(pid_file).read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError) as e:
        raise AccessError(f"cannot reload Mosquitto through {pid_file} ({e}); is it "
                          f"running with 'pid_file {pid_file}'?") from None
    return f"Mosquitto (pid {pid}) reloaded"
