"""A store backup: one file that turns a fresh host into this store (a Pi
that died, a move to new hardware), as Home Assistant's backups do for a
home. The daily backups (backup.py) hold the records only; this one holds
everything the store is:

- the settings folder (concentrator.yaml with the POS key and token and the
  host's broker login, the catalogue, the dashboard's users, probe.yaml,
  adverts kept there);
- from the data folder: a consistent copy of the records database, the
  panel registry (each panel's broker login, the update signing key), the
  store's CA (what panels on TLS trust), adverts kept there.

It is sealed with a passphrase the manager chooses (sealed.py): it holds
every secret of the store and the shoppers' loyalty ids. Inside is a
gzip'd tar with manifest.json last (what came from where, each file's
sha256, counts to show before and after a restore).

A restore goes only onto a host that is not set up. Everything is checked
first (the seal, every file's hash, the database, the settings and
catalogue as they will be used), then put in place with concentrator.yaml
last, as the set-up writes it: a restore that fails leaves the host as it
was. Mosquitto's files are not in the backup: `broker apply` makes them on
the new host from the panel registry and the CA."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import __version__, sealed
from ..service import catalogue as catalogue_mod, config as host_config
from ..service.users import read_users
from ..settings import draft_beside, new_file_beside, own_like, replace_owned
from . import backup as records_backup, layout

log = logging.getLogger(__name__)

WHAT = "loyalty-button store backup"
FORMAT = 1
SUFFIX = ".lbstore"
MANIFEST = "manifest.json"
_MAX_MEMBERS = 20000
# Left behind by editors and by our own writes in progress: not settings.
_SCRATCH = re.compile(r"(\.tmp|\.new|\.partial|\.swp|~)$|^\.")


class StoreBackupError(RuntimeError):
    """kind: what went wrong, for a page to word in its language:
    passphrase, not_backup, damaged, newer, configured, settings, io."""

    def __init__(self, message: str, kind: str = "io"):
        super().__init__(message)
        self.kind = kind


def _sealed_error(e: sealed.SealedError) -> StoreBackupError:
    kind = "passphrase" if isinstance(e, sealed.WrongPassphrase) else \
        "not_backup" if str(e).startswith("not a") else "damaged"
    return StoreBackupError(str(e), kind)


@dataclass
class Summary:
    """What a backup holds, shown before it is made and after a restore."""
    store: str
    made: str
    version: str
    records: int
    panels: list[str]
    users: list[str]
    broker_host: str | None          # the address the panels dial
    not_carried: list[str] = field(default_factory=list)
    file: Path | None = None

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def _inside(path: Path, root: Path) -> str | None:
    """`path` relative to `root` (posix), or None when it lies outside."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None


def _files_under(folder: Path) -> list[Path]:
    out = []
    for top, dirs, names in os.walk(folder):  # links to folders are not followed
        dirs[:] = sorted(d for d in dirs if not _SCRATCH.search(d))
        for name in sorted(names):
            path = Path(top) / name
            if not _SCRATCH.search(name) and path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def _gather(cfg, config: Path) -> tuple[dict[str, Path], list[str]]:
    """Member name -> file, and what the settings name that is not carried."""
    etc, var = config.resolve().parent, Path(cfg.database).resolve().parent
    members = {f"etc/{_inside(p, etc)}": p for p in _files_under(etc)}
    not_carried = []
    named = [("catalogue", cfg.catalogue, True), ("dashboard.users_file", cfg.dashboard_users,
                                                   bool(cfg.dashboard_port)),
             ("panels.registry", cfg.panels_registry, False),
             ("the store's CA", Path(cfg.mosquitto_ca_dir) if cfg.mosquitto_ca_dir else None,
              False),
             ("adverts.folder", cfg.adverts_folder, False)]
    for what, path, required in named:
        if path is None or not Path(path).exists():
            continue
        path = Path(path)
        if _inside(path, etc) is not None:
            continue  # the settings folder is carried whole
        if _inside(path, var) is None:
            if required:
                raise StoreBackupError(
                    f"{what} ({path}) is outside {etc} and {var}: a store backup carries "
                    f"those two folders; move it into one and name it in {config.name}")
            not_carried.append(f"{what}: {path}")
            continue
        files = _files_under(path) if path.is_dir() else [path]
        if what == "the store's CA":
            files = [p for p in files if p.name in ("ca.key", "ca.crt")]
        for p in files:
            members[f"var/{_inside(p, var)}"] = p
    return members, not_carried


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _counts(db: Path | None, registry: Path | None, users: Path | None) -> tuple:
    records = 0
    if db is not None:
        conn = records_backup._open_still(db)
        try:
            records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        finally:
            conn.close()
    panels = []
    if registry is not None and registry.exists():
        try:
            panels = sorted(json.loads(registry.read_text()).get("panels", {}))
        except (OSError, ValueError):
            panels = []
    names = sorted(read_users(users)) if users is not None and users.exists() else []
    return records, panels, names


def make(config: Path, passphrase: str, dest: Path) -> Summary:
    """A store backup of the store set up by `config` (concentrator.yaml),
    into folder `dest`; returns what it holds, with its path in `file`."""
    config = Path(config)
    why = sealed.check_passphrase(passphrase)
    if why:
        raise StoreBackupError(why)
    try:
        cfg = host_config.load(config)
    except host_config.HostConfigError as e:
        raise StoreBackupError(f"{config}: {'; '.join(e.problems)}") from None
    members, not_carried = _gather(cfg, config)
    for name, path in members.items():
        if name.endswith("/ca.key") and not os.access(path, os.R_OK):
            raise StoreBackupError(f"cannot read the store's CA key {path}; copy ca.key and "
                                   f"ca.crt into {layout.STORE_CA} and set mosquitto.ca_dir "
                                   f"to it (docs/install.md, 'Moving a store')")
    var = Path(cfg.database).resolve().parent
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = dest / f"{cfg.store}-{stamp}{SUFFIX}"
    partial = dest / f".{final.name}.partial"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=var, prefix=".store-backup-") as work:
        db = None
        if Path(cfg.database).exists():
            db = Path(work) / "records.db"
            try:
                records_backup.snapshot(cfg.database, db)
            except (sqlite3.Error, OSError, records_backup.BackupError) as e:
                raise StoreBackupError(f"the records database could not be copied: {e}") \
                    from None
            members[f"var/{_inside(cfg.database, var)}"] = db
        records, panels, users = _counts(db, cfg.panels_registry, cfg.dashboard_users)
        summary = Summary(cfg.store, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          __version__, records, panels, users, cfg.panels_broker_host,
                          not_carried)
        manifest = {"what": WHAT, "format": FORMAT, **summary.as_dict(),
                    "schema": records_backup.check_database(db) if db else None,
                    "etc": str(config.resolve().parent), "var": str(var),
                    "config": f"etc/{config.name}", "files": {},
                    "database": f"var/{_inside(cfg.database, var)}" if db else None}
        manifest.pop("file")
        about = {"what": WHAT, "format": FORMAT, "store": cfg.store, "made": summary.made,
                 "version": __version__}
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                seal = sealed.SealWriter(out, passphrase, about)
                with tarfile.open(fileobj=seal, mode="w|gz") as tar:
                    for name, path in sorted(members.items()):
                        st = path.stat()
                        manifest["files"][name] = {"sha256": _sha256(path),
                                                   "mode": st.st_mode & 0o777}
                        info = tarfile.TarInfo(name)
                        info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o777, \
                            int(st.st_mtime)
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    text = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mode, info.mtime = len(text), 0o600, int(time.time())
                    tar.addfile(info, io.BytesIO(text))
                seal.close()
                out.flush()
                os.fsync(out.fileno())
            partial.replace(final)
        except (OSError, sealed.SealedError) as e:
            partial.unlink(missing_ok=True)
            raise StoreBackupError(f"the store backup into {dest} failed: "
                                   f"{getattr(e, 'strerror', None) or e}") from None
    summary.file = final
    log.info("store backup %s: %d records, %d panels, %d users, %d bytes, %.1f s%s", final,
             records, len(panels), len(users), final.stat().st_size,
             time.monotonic() - started,
             f"; not carried: {', '.join(not_carried)}" if not_carried else "")
    return summary


def about(path: Path) -> dict:
    """A backup's outside (store, when, version), readable without the
    passphrase; StoreBackupError when the file is not a store backup."""
    try:
        with open(path, "rb") as f:
            header, _ = sealed.read_header(f)
    except sealed.SealedError as e:
        raise _sealed_error(e) from None
    except OSError as e:
        raise StoreBackupError(f"cannot read {path}: {e.strerror}") from None
    if header.get("what") != WHAT:
        raise StoreBackupError("not a Loyalty Button store backup", "not_backup")
    return header


# --- restore -------------------------------------------------------------------

def _unpack(path: Path, passphrase: str, staging: Path) -> dict:
    """Open, check and unpack the backup into `staging`; its manifest."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise StoreBackupError(f"cannot read {path}: {e.strerror}", "io") from None
    with f:
        try:
            reader = sealed.OpenSealed(f, passphrase)
        except sealed.SealedError as e:
            raise _sealed_error(e) from None
        header = reader.header
        if header.get("what") != WHAT:
            raise StoreBackupError("not a Loyalty Button store backup", "not_backup")
        if not isinstance(header.get("format"), int) or header["format"] > FORMAT:
            raise StoreBackupError(f"this backup was made by a newer Loyalty Button "
                                   f"({header.get('version')}): install that version first",
                                   "newer")
        seen = 0
        try:
            with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 16), mode="r|gz") as tar:
                for member in tar:
                    seen += 1
                    name = PurePosixPath(member.name)
                    if (seen > _MAX_MEMBERS or not member.isfile() or name.is_absolute()
                            or ".." in name.parts
                            or not (name.parts[0] in ("etc", "var") and len(name.parts) > 1
                                    or str(name) == MANIFEST)):
                        raise StoreBackupError(f"the backup holds {member.name!r}, which no "
                                               f"store backup does: refused", "damaged")
                    dest = staging / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
        except sealed.SealedError as e:
            raise _sealed_error(e) from None
        except (tarfile.TarError, EOFError, zlib.error, FileExistsError) as e:
            raise StoreBackupError(f"the backup is damaged inside ({e})", "damaged") from None
    try:
        manifest = json.loads((staging / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreBackupError("the backup has no readable manifest: it is damaged",
                               "damaged") from None
    got = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    if got - {MANIFEST} != set(files):
        raise StoreBackupError("the backup's files are not the ones its manifest lists",
                               "damaged")
    for name, entry in files.items():
        if _sha256(staging / name) != entry.get("sha256"):
            raise StoreBackupError(f"{name} in the backup does not match its checksum",
                                   "damaged")
    return manifest


def _rebase(text: str, manifest: dict, etc: Path, var: Path) -> str:
    """The settings' paths moved from the backed-up host's folders to this
    one's (the same on two appliances)."""
    for old, new in ((manifest["var"], var), (manifest["etc"], etc)):
        if str(old) != str(new):
            text = re.sub(rf"(?<![\w/.-]){re.escape(str(old))}(?=/|\s|$)", str(new), text)
    return text


def restore(path: Path, passphrase: str, etc: Path = layout.ETC,
            var: Path = layout.VAR) -> Summary:
    """Make this host the store in the backup `path`. Refused when the host
    is set up already; nothing is left behind by a refused restore."""
    etc, var = Path(etc), Path(var)
    config = etc / layout.CONFIG.name
    if config.exists():  # the mark of a store set up (firstrun.configured)
        raise StoreBackupError(f"this host is set up already ({config}): a store backup "
                               f"goes onto a fresh host (move that file away first to replace "
                               f"this store)", "configured")
    placed: list[Path] = []      # files put in place, removed again on failure
    made_dirs: list[Path] = []   # folders made, likewise
    aside: list[tuple[Path, Path]] = []
    if not var.exists():
        var.mkdir(parents=True)
        made_dirs.append(var)
    staging = Path(tempfile.mkdtemp(dir=var, prefix=".store-restore-"))
    try:
        manifest = _unpack(Path(path), passphrase, staging)
        db_name = manifest.get("database")
        if db_name:
            try:
                records_backup.check_database(staging / db_name)
                records_backup.drop_triggers(staging / db_name)
            except (records_backup.BackupError, sqlite3.Error) as e:
                raise StoreBackupError(f"the records in the backup: {e}",
                                       "newer" if "newer" in str(e) else "damaged") from None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for name, entry in sorted(manifest["files"].items()):
            if name == manifest["config"]:
                continue
            top, rel = name.split("/", 1)
            dest = (etc if top == "etc" else var) / rel
            for parent in reversed(dest.parents):
                if parent.is_symlink() and _inside(parent, etc if top == "etc" else var) \
                        is not None:  # root must not be led out of the store's folders
                    raise StoreBackupError(f"{parent} is a symbolic link: refused", "io")
                if not parent.exists():
                    parent.mkdir(mode=0o750)
                    made_dirs.append(parent)
                    own_like(parent, etc if top == "etc" else var)
            if dest.exists():
                kept = dest.with_name(f"{dest.name}.before-restore-{stamp}")
                dest.replace(kept)
                aside.append((kept, dest))
            # A copy, not a rename: /etc and /var may be two file systems.
            fd, tmp = new_file_beside(dest, int(entry.get("mode", 0o600)) & 0o750)
            placed.append(tmp)
            with os.fdopen(fd, "wb") as out, open(staging / name, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            replace_owned(tmp, dest)
            placed.append(dest)
        text = _rebase((staging / manifest["config"]).read_text(encoding="utf-8"),
                       manifest, etc.resolve(), var.resolve())
        if not etc.exists():
            etc.mkdir(parents=True)
            made_dirs.append(etc)
        draft = draft_beside(config, text, 0o600)
        placed.append(draft)
        try:
            what = config.name
            cfg = host_config.load(draft)
            what = "the catalogue"
            catalogue_mod.load(cfg.catalogue)
        except (host_config.HostConfigError, catalogue_mod.CatalogueError) as e:
            raise StoreBackupError(f"the backup's settings do not work on this host: {what}: "
                                   + "; ".join(e.problems), "settings") from None
        replace_owned(draft, config)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        for dest in reversed(placed):
            dest.unlink(missing_ok=True)
        for kept, dest in aside:
            kept.replace(dest)
        for folder in reversed(made_dirs):
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, OSError):
            raise StoreBackupError(f"the restore failed and was undone: {e}", "io") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = Summary(manifest["store"], manifest["made"], manifest["version"],
                      manifest["records"], manifest["panels"], manifest["users"],
                      manifest.get("broker_host"), manifest.get("not_carried", []))
    log.info("store %s restored from %s (made %s by %s): %d records, panels %s, users %s",
             summary.store, Path(path).name, summary.made, summary.version, summary.records,
             ", ".join(summary.panels) or "none", ", ".join(summary.users) or "none")
    return summary


# --- the commands ------------------------------------------------------------------

def read_passphrase(twice: bool) -> str:
    """From a terminal (asked twice when making a backup), else one line of stdin."""
    import getpass
    import sys
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("the backup's passphrase: ")
    if twice and getpass.getpass("the same again: ") != first:
        raise StoreBackupError("the two passphrases differ")
    return first


def describe(summary: Summary) -> list[str]:
    lines = [f"store {summary.store}, made {summary.made} by Loyalty Button {summary.version}",
             f"  {summary.records} records; panels: {', '.join(summary.panels) or 'none'}; "
             f"dashboard users: {', '.join(summary.users) or 'none'}"]
    if summary.broker_host:
        lines.append(f"  the panels dial {summary.broker_host}: this host must have that "
                     f"address on the store LAN")
    lines += [f"  not carried: {item}" for item in summary.not_carried]
    return lines


def backup_cli(args) -> int:
    import sys
    try:
        config = Path(args.config)
        dest = Path(args.to) if args.to else None
        if dest is None:
            dest = host_config.load(config).backup_dir
        summary = make(config, read_passphrase(twice=True), dest)
    except (StoreBackupError, host_config.HostConfigError) as e:
        print(f"backup: {e}", file=sys.stderr)
        return 1
    print("\n".join(describe(summary)))
    print(summary.file)
    return 0


def restore_cli(args) -> int:
    import sys
    etc = Path(args.config).parent
    try:
        outside = about(Path(args.file))
        print(f"a backup of store {outside.get('store')} made {outside.get('made')}")
        summary = restore(Path(args.file), read_passphrase(twice=False), etc, Path(args.var))
    except StoreBackupError as e:
        print(f"restore: {e}", file=sys.stderr)
        return 1
    print("restored " + "\n".join(describe(summary)))
    print("next: loyalty-button broker apply --config " + str(etc / layout.CONFIG.name) +
          ", then systemctl restart loyalty-button")
    return 0
