"""Content-addressed model blobs in Redis: stored once under their SHA-256, kept for a TTL."""
from __future__ import annotations

import hashlib
import re

from .errors import AgentError

BLOB_PREFIX = "edgeprune:farm:blob:"
DEFAULT_BLOB_TTL_S = 24 * 3600
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(AgentError):
    """The blob expired or was never stored; the host must upload it again."""


def blob_key(sha256: str) -> str:
    """Redis key of one blob; refuses anything that is not a hex SHA-256."""
    if not isinstance(sha256, str) or not _SHA_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return BLOB_PREFIX + sha256


def stage_blob(pipe, data: bytes, ttl_s: float = DEFAULT_BLOB_TTL_S) -> str:
    """Queue on a pipeline: store data once (an existing copy only gets its TTL renewed); returns its SHA-256."""
    if not data:
        raise ValueError("refusing to store an empty blob")
    sha = hashlib.sha256(data).hexdigest()
    key, ttl_ms = blob_key(sha), int(ttl_s * 1000)
    pipe.set(key, data, px=ttl_ms, nx=True).pexpire(key, ttl_ms)
    return sha


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
