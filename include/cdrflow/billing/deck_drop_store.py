"""The deck drop location as storage: list what waits there, copy a drop to local disk (hashing
it), and keep a handled drop under ``processed/`` or ``rejected/``.

Any ``ObjectStoragePath`` URL (fsspec underneath): a local folder (the default,
``<state>/decks-inbox``; a relative path is under the state directory), ``file://...``, or
``s3://[conn_id@]bucket/prefix`` with an Airflow ``aws`` connection. The same code serves both:
the importers read local files, so every drop is copied to a temporary folder first, and the
bytes hashed are the bytes imported (a file changed while it is read cannot slip in unhashed).

Nothing is deleted: a drop is moved (a rename on disk, copy + delete on S3) file by file, and a
name already taken in ``processed/`` or ``rejected/`` gets the drop's SHA1 in it instead of
being overwritten (:func:`~cdrflow.billing.deck_drop_names.with_sha`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cdrflow.billing.deck_drop_names import READY_MARKER, RESERVED, ignored, is_format_folder, with_sha
from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError, ConfigurationError, one_line

log = logging.getLogger(__name__)

DROP_VARIABLE = "CDRFLOW_DECK_DROP"
CHUNK = 1 << 20


class DropUnavailable(CdrflowError):
    """The drop location cannot be listed or written (missing bucket, no access): nothing was
    imported; the task fails and the next run tries again."""


def drop_url() -> str:
    """The configured drop location (``CDRFLOW_DECK_DROP``; default ``<state>/decks-inbox``)."""
    return os.environ.get(DROP_VARIABLE, "").strip() or str(settings.state_dir() / "decks-inbox")


def _name(entry: dict) -> str:
    return str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]


class DropLocation:
    """The drop location at ``url``: its fsspec filesystem and root path."""

    def __init__(self, url: str):
        from airflow.sdk import ObjectStoragePath  # heavy import: only where a drop is read

        url = url.strip()
        if "://" not in url:  # a plain local path
            folder = Path(url).expanduser()
            if not folder.is_absolute():
                folder = settings.state_dir() / folder
            url = folder.as_uri()
        base = ObjectStoragePath(url)
        self.local = base.protocol in ("file", "local")
        self.conn_id = base.conn_id
        self.root = base.path.rstrip("/")
        self.bucket = base.bucket if not self.local else ""
        # as operators wrote it, without a connection id or credentials
        self.where = self.root if self.local else f"{base.protocol}://{self.root}"
        self._check_connection()
        self.fs = base.fs
        if self.local:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)  # operators drop into it by hand
            except OSError as exc:
                raise DropUnavailable(f"deck drop {self.where}: cannot create the folder: {one_line(exc)}") from exc
        else:
            # s3fs caches listings per filesystem, and Airflow keeps one per connection for the
            # life of the worker: without this a second run would see the first run's listing.
            self.fs.invalidate_cache()

    def _check_connection(self) -> None:
        # A connection that does not exist makes the amazon provider fall back, with a warning
        # only, to boto3's default credentials and real AWS: never what the operator meant.
        if self.local or not self.conn_id:
            return
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException:
            raise ConfigurationError(
                f"deck drop {self.where}: the Airflow connection {self.conn_id!r} is not defined "
                f"(AIRFLOW_CONN_{self.conn_id.upper()} or a secrets backend)"
            ) from None

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _outside(self, full: str) -> bool:
        """A local path whose real path leaves the drop folder (a symbolic link, or a file in a
        linked folder): never followed. It could lead to any file the worker may read, whose lines
        a refusal would then quote in its log and ``.error.txt``. It stays where it is."""
        if not self.local:
            return False
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(full)]) == root:
            return False
        log.warning("%s leads outside the deck drop (a symbolic link): not followed, left where it is", full)
        return True

    # -- listing ------------------------------------------------------------------------------

    def _ls_root(self) -> list[dict]:
        try:
            return self.fs.ls(self.root, detail=True, refresh=True)
        except FileNotFoundError as exc:
            if self.local:
                raise DropUnavailable(f"deck drop {self.where} is unavailable: {one_line(exc)}") from exc
            # S3 has no folders: an empty prefix "does not exist". Is the bucket there?
            try:
                self.fs.info(self.bucket, refresh=True)
            except Exception as probe:
                reason = "no such bucket" if isinstance(probe, FileNotFoundError) else one_line(probe)
                raise DropUnavailable(f"deck drop {self.where} is unavailable: {reason}") from probe
            return []
        except Exception as exc:  # botocore's own types too: all mean "cannot list"
            raise DropUnavailable(f"deck drop {self.where} is unavailable: {one_line(exc)}") from exc

    def pending(self) -> list[tuple[str, bool]]:
        """(name, is_dir) of every drop waiting, by name: the items of each deck folder, and the
        tariff plans (``*.cgrates``, ``*.zip`` ...) and stray files at the top."""
        out: list[tuple[str, bool]] = []
        for entry in sorted(self._ls_root(), key=_name):
            top = _name(entry)
            is_dir = entry.get("type") == "directory"
            if ignored(top) or (is_dir and top in RESERVED) or self._outside(self.path(top)):
                continue
            if not is_dir or is_format_folder(top):
                out.append((top, is_dir))
                continue
            try:
                items = self.fs.ls(self.path(top), detail=True, refresh=True)
            except FileNotFoundError:  # the deck folder went away meanwhile
                continue
            for item in sorted(items, key=_name):
                name = _name(item)
                # name == top: an S3 folder's own marker object
                if ignored(name) or name == top or self._outside(self.path(f"{top}/{name}")):
                    continue
                out.append((f"{top}/{name}", item.get("type") == "directory"))
        return out

    def kind_of(self, name: str) -> bool:
        """True when ``name`` is a folder, False a file; :class:`CdrflowError` when it is neither."""
        full = self.path(name)
        if self._outside(full):
            raise CdrflowError(f"{name} leads outside the deck drop {self.where} (a symbolic link): not followed")
        if self.fs.isdir(full):
            return True
        if self.fs.isfile(full):
            return False
        raise CdrflowError(f"no drop {name} in the deck drop {self.where}")

    def files(self, name: str) -> list[tuple[str, str]]:
        """(path inside the folder, full path) of every file of folder drop ``name``, by path."""
        prefix = self.path(name) + "/"
        found = []
        for full in self.fs.find(self.path(name)):
            rel = full[len(prefix) :] if full.startswith(prefix) else ""
            if rel and not rel.endswith("/") and not self._outside(full):
                found.append((rel, full))
        return sorted(found)

    def ready(self, name: str) -> bool:
        """A folder drop is complete when its ``.ready`` file is there."""
        return any(rel == READY_MARKER for rel, _ in self.files(name))

    # -- copying --------------------------------------------------------------------------------

    def _copy(self, full: str, dest: Path) -> str:
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1()
        with self.fs.open(full, "rb") as src, dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    def fetch(self, name: str, is_dir: bool, dest: Path) -> str:
        """Copy drop ``name`` to ``dest`` and return its SHA1: a file's bytes; a folder's: SHA1 of
        its ``"path NUL sha1\\n"`` lines, by path, hidden files (``.ready``) left out."""
        if not is_dir:
            return self._copy(self.path(name), dest)
        dest.mkdir(parents=True, exist_ok=True)
        lines = []
        for rel, full in self.files(name):
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            lines.append(f"{rel}\0{self._copy(full, dest.joinpath(*rel.split('/')))}\n")
        return hashlib.sha1("".join(lines).encode()).hexdigest()

    # -- keeping ----------------------------------------------------------------------------------

    def keep(self, name: str, is_dir: bool, where: str, sha1: str, note: str | None = None) -> str:
        """Move drop ``name`` under ``where`` (processed or rejected), the same path below it;
        ``note`` is written beside it as ``<name>.error.txt`` first. Returns the new name."""
        target = f"{where}/{name}"
        if self.fs.exists(self.path(target)):
            head, _, item = name.rpartition("/")
            target = f"{where}/{head + '/' if head else ''}{with_sha(item, sha1)}"
        if note is not None:
            self._write(self.path(target + ".error.txt"), note.encode())
        self._move(name, target, is_dir)
        return target

    def _write(self, full: str, data: bytes) -> None:
        self._parent(full)
        with self.fs.open(full, "wb") as out:
            out.write(data)

    def _parent(self, full: str) -> None:
        if self.local:
            Path(full).parent.mkdir(parents=True, exist_ok=True)

    def _move(self, name: str, target: str, is_dir: bool) -> None:
        if not is_dir:
            self._parent(self.path(target))
            self.fs.mv(self.path(name), self.path(target))
            return
        for rel, full in self.files(name):
            dest = f"{self.path(target)}/{rel}"
            self._parent(dest)
            self.fs.mv(full, dest)
        if self.local:  # the emptied folders (S3 has none)
            for folder, _, _ in sorted(os.walk(self.path(name)), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(folder)
                except OSError as exc:  # something arrived meanwhile: it stays, and is seen next run
                    log.warning("%s: not removed after moving the drop: %s", folder, one_line(exc))
