"""TLS trust for device agents: a CA file, or a pinned SHA-256 certificate fingerprint."""
from __future__ import annotations

import hashlib
import re
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from edgeprune.errors import EdgepruneError

_HEX64 = re.compile(r"[0-9a-f]{64}")


class TlsTrustError(EdgepruneError):
    """The agent's certificate cannot be trusted (wrong pin, unreadable CA file)."""


def normalise_fingerprint(text: str) -> str:
    """'sha256:<64 hex>' from that form, bare hex, or colon-separated hex (as openssl prints it)."""
    flat = text.strip().lower()
    flat = (flat[len("sha256:"):] if flat.startswith("sha256:") else flat).replace(":", "")
    if not _HEX64.fullmatch(flat):
        raise TlsTrustError(f"{text!r} is not a SHA-256 certificate fingerprint (64 hex digits, e.g. as "
                            "printed by `edgeprune-agent serve --tls-cert ...`)")
    return "sha256:" + flat


def ca_context(ca_cert: str | Path) -> ssl.SSLContext:
    """Verify the agent against this CA (or self-signed certificate) file, hostname included."""
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise TlsTrustError(f"cannot use CA file {ca_cert}: {exc}; give a PEM certificate") from exc


def pinned_context(url: str, fingerprint: str, timeout_s: float = 10.0) -> ssl.SSLContext:
    """Trust exactly the certificate the agent serves now, after checking it against the pinned fingerprint.

    The fetched certificate becomes the only trust anchor, so later connections are verified against it too.
    """
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise TlsTrustError(f"a certificate fingerprint needs an https:// URL, got {url}")
    pem = ssl.get_server_certificate((parts.hostname, parts.port or 443), timeout=timeout_s)
    served = "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    if served != normalise_fingerprint(fingerprint):
        raise TlsTrustError(f"agent at {url} presents certificate {served}, not the pinned {fingerprint}: "
                            "someone may be intercepting; if the agent's certificate was replaced on purpose, "
                            "re-add the device with the new --tls-fingerprint")
    context = ssl.create_default_context(cadata=pem)
    context.check_hostname = False  # the pin identifies the agent, whatever name or address it is reached by
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context
