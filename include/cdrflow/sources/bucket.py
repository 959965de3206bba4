"""The upload-bucket collector: an S3 prefix (or a local directory) where carriers drop files.

A :class:`~cdrflow.config.carrier_file.BucketSource` names ``s3://bucket/prefix/`` with an Airflow
``aws`` connection (``conn_id``; its extra ``endpoint_url`` points at an S3-compatible server),
a ``file://`` URL, or a local directory path (relative paths are under the state directory). All
of them are reached through Airflow's ``ObjectStoragePath`` (fsspec underneath), so the code is
the same for both.

One run lists the objects directly under the prefix, keeps the names that match the source's
patterns, streams each one into the registry (:func:`cdrflow.sources.base.collect_one`) and only
then moves it to ``<prefix>/<processed_prefix><name>``. An object that is not yet moved when a run
dies is registered again by the next run, as a duplicate of itself (same SHA1): nothing is lost or
loaded twice.

A processed object of the same name is overwritten, on purpose. Both versions' bytes are already
in the raw store, each registered under its own SHA1, so nothing is lost; and S3 has no rename:
a move is copy + delete, and a run that dies between the two re-copies the same bytes onto the
same key next time instead of piling up ``name.1``, ``name.2``... copies. ``processed/`` is a
courtesy view for the carrier and the operators, not the archive: the raw store is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from cdrflow.config import settings
from cdrflow.config.carrier_file import BucketSource
from cdrflow.config.deployment import refuse_local
from cdrflow.config.errors import ConfigurationError, SourceUnavailable, SourceUnreadable, one_line
from cdrflow.intake.names import clean_name
from cdrflow.intake.rawstore import RawStore
from cdrflow.sources.base import Collected, collect_one, matches, skipped

log = logging.getLogger(__name__)

KIND = "bucket"
# Names that a client is still uploading (browsers, rsync, most upload tools) or that are hidden.
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload")


def _base_path(source: BucketSource):
    """The ObjectStoragePath of the source's prefix; a local directory is created if missing."""
    from airflow.sdk import ObjectStoragePath  # heavy import: only where a bucket is read

    url = source.url.strip()
    if "://" not in url:  # a plain local path
        folder = Path(url).expanduser()
        if not folder.is_absolute():
            folder = settings.state_dir() / folder
        url = folder.as_uri()
    base = ObjectStoragePath(url, conn_id=source.conn_id or None)
    if _is_local(base):
        refuse_local("bucket source", base.path)  # one machine's folder: not under Celery unless shared
        # Operators drop files into it by hand: make it exist from the first run on.
        try:
            Path(base.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceUnavailable(f"bucket source {base.path}: cannot create the directory: {one_line(exc)}") from exc
    return base


def _is_local(base) -> bool:
    return base.protocol in ("file", "local")


def _where(base) -> str:
    """The source as operators wrote it, without the connection id or anything else in the
    URL's user part, and with the connection id named separately."""
    if _is_local(base):
        return base.path
    return f"{base.protocol}://{base.path} (conn_id {base.conn_id or 'none: default AWS credentials'})"


def _uri(base, path: str) -> str:
    """The URL of an object for ``cdr_files.source_uri``: no credentials, no connection id."""
    return Path(path).as_uri() if _is_local(base) else f"{base.protocol}://{path}"


def _check_connection(base) -> None:
    # The amazon provider's S3Hook, when the connection does not exist, only logs a warning and
    # falls back to the default boto3 credentials and real AWS endpoints. For a source that names
    # a connection that is never what the operator meant: say so instead.
    if _is_local(base) or not base.conn_id:
        return
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(base.conn_id)
    except AirflowNotFoundException:
        raise ConfigurationError(
            f"bucket source {base.protocol}://{base.path}: the Airflow connection "
            f"{base.conn_id!r} is not defined (AIRFLOW_CONN_{base.conn_id.upper()} "
            f"or a secrets backend)"
        ) from None


def _list(base) -> list[dict]:
    """The entries directly under the prefix, listed afresh from the server.

    ``refresh=True``: fsspec keeps one filesystem instance per connection for the life of the
    process (Airflow's store cache, fsspec's instance cache) and s3fs caches directory listings
    on it, so without it a second run in the same worker would see the first run's listing.
    """
    fs = base.fs
    try:
        return fs.ls(base.path, detail=True, refresh=True)
    except FileNotFoundError as exc:
        if _is_local(base):
            raise SourceUnavailable(f"bucket source {_where(base)} is unavailable: {one_line(exc)}") from exc
        # s3fs says FileNotFoundError both for an empty prefix (S3 has no directories: a prefix
        # with no objects does not exist) and for a missing bucket. Ask for the bucket itself
        # (HEAD bucket): if it is there, the prefix is simply empty.
        try:
            fs.info(base.bucket, refresh=True)
        except Exception as probe:
            reason = "no such bucket" if isinstance(probe, FileNotFoundError) else one_line(probe)
            raise SourceUnavailable(f"bucket source {_where(base)} is unavailable: {reason}") from probe
        return []
    except Exception as exc:
        # botocore raises its own exception types (EndpointConnectionError, NoCredentialsError)
        # besides s3fs's OSError translations; all of them mean the same thing to an operator.
        # The chained traceback keeps the details.
        raise SourceUnavailable(f"bucket source {_where(base)} is unavailable: {one_line(exc)}") from exc


def _wanted(entry: dict, patterns: tuple[str, ...]) -> str | None:
    """The object's name when it is a file this source should take, else None."""
    if entry.get("type") != "file":
        return None  # a "directory": processed/, any other sub-prefix
    raw = entry["name"]
    if raw.endswith("/"):
        return None  # a zero-byte "folder" marker object (what S3 consoles create)
    name = raw.rsplit("/", 1)[-1]
    if not name or name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
        return None
    return name if matches(name, patterns) else None


def collect(engine: Engine, store: RawStore, carrier: str, source: BucketSource) -> list[Collected]:
    """Register every matching object directly under ``source.url`` and move it under
    ``processed_prefix``. Returns one :class:`Collected` per object handled, in name order.

    Raises :class:`SourceUnavailable` when the bucket or directory cannot be listed (nothing is
    registered then) or when a registered object cannot be moved away (so that the next run does
    not quietly record it again); :class:`ConfigurationError` when ``conn_id`` names no Airflow
    connection. An object that vanishes or cannot be read is skipped and stays for the next run.
    """
    base = _base_path(source)
    _check_connection(base)
    # processed_prefix is a sub-"directory" whatever its slashes: "processed" must not become a
    # sibling name like "processedfoo.csv", which the next listing would collect again.
    if not source.processed_prefix.strip("/"):
        raise ConfigurationError(
            f"bucket source {_where(base)}: processed_prefix cannot be empty "
            "(registered objects must be moved out of the prefix)"
        )
    processed = base / source.processed_prefix.strip("/")
    entries = sorted(_list(base), key=lambda e: e["name"])
    todo = [(entry["name"], name) for entry in entries if (name := _wanted(entry, source.patterns))]
    if todo and _is_local(base):
        Path(processed.path).mkdir(parents=True, exist_ok=True)  # S3 needs no directories
    results: list[Collected] = []
    for path, name in todo:
        obj = base / name
        uri = _uri(base, path)
        registered_name = clean_name(name)
        try:
            stream = obj.open("rb")
        except OSError as exc:  # vanished (taken by another run?), or this one object is denied
            results.append(
                skipped(
                    kind=KIND,
                    carrier=carrier,
                    name=registered_name,
                    source_uri=uri,
                    reason=f"cannot open: {one_line(exc)}",
                )
            )
            continue
        try:
            with stream:
                done = collect_one(
                    engine, store, stream, kind=KIND, carrier=carrier, name=registered_name, source_uri=uri
                )
        except SourceUnreadable as exc:  # failed mid-read: nothing was recorded
            results.append(skipped(kind=KIND, carrier=carrier, name=registered_name, source_uri=uri, reason=str(exc)))
            continue
        results.append(done)
        target = processed / name
        try:
            obj.move(target)  # fsspec: a rename on disk, copy + delete on S3; overwrites (see above)
        except FileNotFoundError:
            log.warning("%s was registered as file %s but was gone before it could be moved", uri, done.file_id)
        except Exception as exc:
            raise SourceUnavailable(
                f"bucket source {_where(base)}: {name} was registered as file {done.file_id} but "
                f"could not be moved to {processed.path}/ ({one_line(exc)}); until it is moved, "
                f"every run records it again as a duplicate"
            ) from exc
    return results


def run(engine: Engine, store: RawStore, carrier: str, source: BucketSource) -> list[Collected]:
    """The collector's entry point for the DAG (same as :func:`collect`, for symmetry with the
    other collectors)."""
    return collect(engine, store, carrier, source)
