"""The raw store: original file bytes, written once, addressed by their SHA1.

Built on Airflow's ``ObjectStoragePath`` (fsspec underneath), so the same code writes to a
local directory (the default) or to ``s3://[conn_id@]bucket/prefix``. A blob's key is
``sha1/ab/cd/abcd...``; the same bytes from any source land on the same key.

Bytes are streamed: read in chunks, hashed and written as they come, into a temporary object
that is renamed to its content address only once it is complete. A source that fails midway
leaves no blob behind.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import BinaryIO

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class StoredBlob:
    sha1: str
    size: int
    key: str  # content address inside the store
    url: str  # full URL of the blob


class RawStore:
    def __init__(self, base_url: str):
        from airflow.sdk import ObjectStoragePath  # heavy import: only where bytes are stored

        self.base = ObjectStoragePath(base_url)
        self.base_url = base_url.rstrip("/")

    @staticmethod
    def key_for(sha1: str) -> str:
        return f"sha1/{sha1[:2]}/{sha1[2:4]}/{sha1}"

    def path_for(self, key: str):
        return self.base / key

    def url_for(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def exists(self, sha1: str) -> bool:
        return self.path_for(self.key_for(sha1)).exists()

    def put_stream(self, stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> StoredBlob:
        """Copy ``stream`` into the store, hashing as it goes. Exceptions from reading the
        stream propagate after the partial copy is removed."""
        tmp_dir = self.base / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha1()
        size = 0
        try:
            with tmp.open("wb") as out:
                while chunk := stream.read(chunk_size):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sha1 = digest.hexdigest()
        key = self.key_for(sha1)
        final = self.path_for(key)
        if final.exists():
            tmp.unlink(missing_ok=True)  # the same bytes are already stored
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            # Two writers of the same bytes may both get here: the second rename replaces a
            # blob with identical content, which is harmless.
            tmp.rename(final)
        return StoredBlob(sha1=sha1, size=size, key=key, url=self.url_for(key))

    def open(self, key: str) -> BinaryIO:
        """The stored bytes of ``key``, as a binary stream."""
        return self.path_for(key).open("rb")
