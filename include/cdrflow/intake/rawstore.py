"""The raw store: original file bytes, written once, addressed by their SHA1.

Built on Airflow's ``ObjectStoragePath`` (fsspec underneath), so the same code writes to a
local directory (the default) or to ``s3://[conn_id@]bucket/prefix``. A blob's key is
``sha1/ab/cd/abcd...``; the same bytes from any source land on the same key.

Bytes are streamed: read in chunks, hashed and written as they come, into a temporary object
that is renamed to its content address only once it is complete. A source that fails midway
leaves no blob behind.

Failures are told apart by side: an error reading the source stream propagates as it is (the
caller blames that one file); an error of the store itself (a missing or unwritable directory, a
full disk, an S3 bucket that is missing or refuses the credentials, no credentials at all) is
:class:`~cdrflow.config.errors.RawStoreUnavailable`, naming the store: no file can be registered
until it is fixed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from cdrflow.config.deployment import refuse_local
from cdrflow.config.errors import RawStoreUnavailable, one_line, shown_url

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB


def storage_path(url: str):
    """The path object of a store's URL: Airflow's ``ObjectStoragePath`` for remote stores (it
    resolves ``s3://conn_id@bucket`` through Airflow's connections), and for a local folder
    ``upath.UPath``, the universal_pathlib path that ``ObjectStoragePath`` itself is built on,
    with the same fsspec file system: importing Airflow's SDK for it took 0.7 s of every
    ``cdrflow load`` and ``cdrflow upload``."""
    if url.startswith("file:"):
        from upath import UPath

        return UPath(url)
    from airflow.sdk import ObjectStoragePath  # heavy import: only where bytes are stored remotely

    return ObjectStoragePath(url)


@dataclass(frozen=True)
class StoredBlob:
    sha1: str
    size: int
    key: str  # content address inside the store
    url: str  # full URL of the blob


class RawStore:
    def __init__(self, base_url: str):
        self.base = storage_path(base_url)
        self.base_url = base_url.rstrip("/")
        if self.base.protocol in ("file", "local"):  # one machine's disk: not under Celery unless shared
            refuse_local("the raw store", self.describe())

    @staticmethod
    def key_for(sha1: str) -> str:
        return f"sha1/{sha1[:2]}/{sha1[2:4]}/{sha1}"

    def path_for(self, key: str):
        return self.base / key

    def url_for(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def describe(self) -> str:
        """The store's URL for a message: a password in its user part is never shown."""
        return shown_url(self.base_url)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Any failure of the store inside the block as :class:`RawStoreUnavailable`. botocore
        raises its own types (NoCredentialsError, EndpointConnectionError) besides the OSErrors
        of fsspec and s3fs: to an operator they all mean the store cannot take bytes."""
        try:
            yield
        except RawStoreUnavailable:
            raise
        except Exception as exc:
            raise RawStoreUnavailable(
                f"raw store {self.describe()} is unavailable: cannot {what}: {one_line(exc)}"
            ) from exc

    def put_stream(self, stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> StoredBlob:
        """Copy ``stream`` into the store, hashing as it goes. Exceptions from reading the
        stream propagate as they are after the partial copy is removed; failures of the store
        raise :class:`RawStoreUnavailable`."""
        tmp_dir = self.base / "tmp"
        with self._writing("create its tmp directory"):
            tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha1()
        size = 0
        try:
            with self._writing("open a new blob"):
                out = tmp.open("wb")
            try:
                while chunk := stream.read(chunk_size):  # the source's errors: not the store's
                    digest.update(chunk)
                    with self._writing("write"):
                        out.write(chunk)
                    size += len(chunk)
            finally:
                with self._writing("write"):  # S3 uploads on close
                    out.close()
            key = self.key_for(digest.hexdigest())
            with self._writing("store the blob"):
                self._settle(tmp, self.path_for(key))
        except BaseException:
            self._discard(tmp)
            raise
        return StoredBlob(sha1=digest.hexdigest(), size=size, key=key, url=self.url_for(key))

    @staticmethod
    def _settle(tmp, final) -> None:
        """Give the complete temporary object ``tmp`` its content address ``final``."""
        if final.exists():
            tmp.unlink(missing_ok=True)  # the same bytes are already stored
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            # Two writers of the same bytes may both get here: the second rename replaces a
            # blob with identical content, which is harmless.
            tmp.rename(final)

    @staticmethod
    def _discard(tmp) -> None:
        """Remove a partial temporary object, as far as the store still allows."""
        try:
            tmp.unlink(missing_ok=True)
        except Exception as exc:  # the store is what failed: whatever it kept is left to it
            log.warning("raw store: could not remove the partial object %s: %s", tmp, one_line(exc))

    def open(self, key: str) -> BinaryIO:
        """The stored bytes of ``key``, as a binary stream."""
        return self.path_for(key).open("rb")
