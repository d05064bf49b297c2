"""Canonical Huffman coding of integer symbol streams, serialised to bytes."""
from __future__ import annotations

import heapq
import struct
from collections import Counter
from collections.abc import Sequence

MAX_LEN = 64


def code_lengths(freqs: dict[int, int]) -> dict[int, int]:
    """Huffman code length of every symbol (a lone symbol gets length 1)."""
    if len(freqs) == 1:
        return {next(iter(freqs)): 1}
    heap = [(f, i, [s]) for i, (s, f) in enumerate(sorted(freqs.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(freqs, 0)
    tie = len(heap)
    while len(heap) > 1:
        f1, _, s1 = heapq.heappop(heap)
        f2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (f1 + f2, tie, s1 + s2))
        tie += 1
    if max(lengths.values()) > MAX_LEN:
        raise ValueError(f"Huffman code longer than {MAX_LEN} bits")
    return lengths


def canonical_codes(lengths: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Canonical (code, length) per symbol: ordered by (length, symbol)."""
    codes, code, prev = {}, 0, 0
    for sym, n in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= n - prev
        codes[sym] = (code, n)
        code += 1
        prev = n
    return codes


def huffman_encode(symbols: Sequence[int]) -> bytes:
    """Header (count, table of symbol/length) + canonical Huffman bitstream, MSB first."""
    symbols = [int(s) for s in symbols]
    if any(s < 0 or s > 0xFFFFFFFF for s in symbols):
        raise ValueError("symbols must be in [0, 2**32)")
    freqs = Counter(symbols)
    lengths = code_lengths(freqs) if freqs else {}
    codes = canonical_codes(lengths)
    head = struct.pack("<II", len(symbols), len(lengths))
    head += b"".join(struct.pack("<IB", s, n) for s, n in sorted(lengths.items()))
    bits = "".join(format(codes[s][0], f"0{codes[s][1]}b") for s in symbols)
    pad = (-len(bits)) % 8
    bits += "0" * pad
    payload = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return head + payload


def huffman_decode(blob: bytes) -> list[int]:
    """Inverse of huffman_encode."""
    n, n_sym = struct.unpack_from("<II", blob, 0)
    off = 8
    lengths = {}
    for _ in range(n_sym):
        s, ln = struct.unpack_from("<IB", blob, off)
        lengths[s] = ln
        off += 5
    lookup = {(c, ln): s for s, (c, ln) in canonical_codes(lengths).items()}
    payload = blob[off:]
    bits = format(int.from_bytes(payload, "big"), f"0{len(payload) * 8}b") if payload else ""
    out, code, ln = [], 0, 0
    for b in bits:
        if len(out) == n:
            break
        code = (code << 1) | (b == "1")
        ln += 1
        sym = lookup.get((code, ln))
        if sym is not None:
            out.append(sym)
            code, ln = 0, 0
        elif ln > MAX_LEN:
            raise ValueError("corrupt Huffman stream")
    if len(out) != n:
        raise ValueError(f"corrupt Huffman stream: decoded {len(out)} of {n} symbols")
    return out
