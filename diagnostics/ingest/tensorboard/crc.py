"""CRC-32C (Castagnoli), masked as TFRecord stores it, vectorised over rows with numpy.

TFRecord guards each record's length and payload with a masked CRC-32C; checking millions of
lengths one by one in Python would cost more than the whole read, so every function here works on
whole arrays at once.
"""

from __future__ import annotations

import numpy as np

def _crc_table() -> np.ndarray:
    poly = 0x82F63B78
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _crc_table()
_MASK_DELTA = np.uint32(0xA282EAD8)


def masked_crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of each row of a 2-D uint8 array (all rows the same length)."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(rows.shape[1]):
        crc = _CRC_TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    return (((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA).astype(np.uint32)


def masked_crc32c(data: bytes) -> int:
    """Masked CRC-32C of one byte string (used for payload checks and tests)."""
    if not data:
        rows = np.zeros((1, 0), dtype=np.uint8)
    else:
        rows = np.frombuffer(data, dtype=np.uint8)[None, :]
    return int(masked_crc32c_rows(rows)[0])


def crc_of_u64(words: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of the 8 little-endian bytes of each uint64."""
    crc = np.full(words.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(8):
        byte = ((words >> np.uint64(8 * j)) & np.uint64(0xFF)).astype(np.uint32)
        crc = _CRC_TABLE[(crc ^ byte) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    return (((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA).astype(np.uint32)
