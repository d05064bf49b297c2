"""Relative (gap) indexing of a flat sparse vector with the padding-zero rule."""
from __future__ import annotations

import numpy as np


def to_relative(positions: np.ndarray, symbols: np.ndarray, pos_bits: int,
                pad_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap-1 codes, symbols) with a padding entry (pad_symbol) whenever a gap exceeds 2**pos_bits."""
    span = 1 << pos_bits
    gaps, syms, prev = [], [], -1
    for p, s in zip(positions.tolist(), symbols.tolist()):
        gap = p - prev
        if gap < 1:
            raise ValueError("positions must be strictly increasing and non-negative")
        while gap > span:
            gaps.append(span - 1)
            syms.append(pad_symbol)
            gap -= span
        gaps.append(gap - 1)
        syms.append(s)
        prev = p
    return np.asarray(gaps, dtype=np.int64), np.asarray(syms, dtype=np.int64)


def from_relative(gap_codes: np.ndarray, symbols: np.ndarray,
                  pad_symbol: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of to_relative: (positions, symbols) with padding entries dropped."""
    pos = np.cumsum(np.asarray(gap_codes, dtype=np.int64) + 1) - 1
    symbols = np.asarray(symbols, dtype=np.int64)
    real = symbols != pad_symbol
    return pos[real], symbols[real]
