"""Content-addressed model blobs in Redis: stored once under their SHA-256, kept for a TTL."""
from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Optional

from .errors import AgentError

BLOB_PREFIX = "edgeprune:farm:blob:"
DEFAULT_BLOB_TTL_S = 24 * 3600
DEFAULT_CACHE_BYTES = 256 * 2**20  # a worker keeps this much of the blobs it fetched (least recently used go)
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(AgentError):
    """The blob expired or was never stored; the host must upload it again."""


def blob_key(sha256: str) -> str:
    """Redis key of one blob; refuses anything that is not a hex SHA-256."""
    if not isinstance(sha256, str) or not _SHA_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return BLOB_PREFIX + sha256


def blob_sha(data: bytes) -> str:
    """The address of a blob: its SHA-256 (hex); empty data is refused."""
    if not data:
        raise ValueError("refusing to store an empty blob")
    return hashlib.sha256(data).hexdigest()


def stage_blob(pipe, data: bytes, ttl_s: float = DEFAULT_BLOB_TTL_S) -> str:
    """Queue on a pipeline: store data once (an existing copy only gets its TTL renewed); returns its SHA-256."""
    sha = blob_sha(data)
    key, ttl_ms = blob_key(sha), int(ttl_s * 1000)
    pipe.set(key, data, px=ttl_ms, nx=True).pexpire(key, ttl_ms)
    return sha


def renew_blob(pipe, sha256: str, ttl_s: float = DEFAULT_BLOB_TTL_S):
    """Queue on a pipeline: renew a stored blob's TTL without sending its bytes (the reply is 0 when it is gone)."""
    return pipe.pexpire(blob_key(sha256), int(ttl_s * 1000))


def put_blob(client, data: bytes, ttl_s: float = DEFAULT_BLOB_TTL_S) -> str:
    """Store data once, now; returns its SHA-256."""
    pipe = client.pipeline(transaction=False)
    sha = stage_blob(pipe, data, ttl_s)
    pipe.execute()
    return sha


def get_blob(client, sha256: str) -> bytes:
    """The blob's bytes, checked against their address."""
    return check_blob(sha256, client.get(blob_key(sha256)))


def check_blob(sha256: str, data) -> bytes:
    """Fetched bytes if they are the blob at this address; BlobMissing when absent or corrupt."""
    if data is None:
        raise BlobMissing(f"model blob {sha256[:12]}… is not in the broker (expired after its TTL?)")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobMissing(f"model blob {sha256[:12]}… is corrupt (its SHA-256 does not match)")
    return data


class BlobCache:
    """Blobs a worker already fetched and checked, by SHA-256, so repeated jobs neither refetch nor rehash them."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes, self.size = max_bytes, 0
        self._items: "OrderedDict[str, bytes]" = OrderedDict()

    def get(self, sha256: str) -> Optional[bytes]:
        """The cached bytes (checked when they were fetched), or None."""
        data = self._items.get(sha256)
        if data is not None:
            self._items.move_to_end(sha256)
        return data

    def put(self, sha256: str, data: bytes) -> None:
        """Keep checked bytes, dropping the least recently used blobs beyond max_bytes."""
        if sha256 in self._items or len(data) > self.max_bytes:
            return
        self._items[sha256] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            self.size -= len(self._items.popitem(last=False)[1])
