"""How cached bytes are checked: the fast checksums of a chunk, one per verification block.

Owns: the rule that every byte the cache returns was checked against what was recorded when its chunk
was written. A chunk's name stays its SHA-256 (the content address that lets identical chunks be
stored once); beside it the records keep one xxh3-64 checksum per `BLOCK` bytes, which runs at memory
speed (about 40 times faster than SHA-256 here), so a read checks only the blocks it returns, and a
random 4 KiB read of a cached track costs one block, not the whole chunk. xxh3 is no defence against
someone who writes into the cache folder (they could rewrite the records too); it is a defence
against what disks do: flipped bits, torn or lost writes, and it finds a changed bit with certainty
short of 2**-64.
Concurrency: pure functions of their arguments.
"""

from __future__ import annotations

import hashlib

import xxhash

BLOCK = 64 * 1024
CHECK_SIZE = 8  # bytes of one block's checksum


def checks_of(data: bytes | memoryview, block: int) -> bytes:
    """The checksums of every block of a whole chunk, concatenated."""
    view = memoryview(data)
    return b"".join(
        xxhash.xxh3_64_digest(view[start : start + block]) for start in range(0, len(view), block)
    )


def blocks_intact(data: bytes | memoryview, checks: bytes, first_block: int, block: int) -> bool:
    """Whether `data`, the blocks of a chunk from `first_block` on (the last one may be short: the
    chunk's end), matches its recorded `checks`."""
    view = memoryview(data)
    for number, start in enumerate(range(0, len(view), block), first_block):
        expected = checks[number * CHECK_SIZE : (number + 1) * CHECK_SIZE]
        if xxhash.xxh3_64_digest(view[start : start + block]) != expected:
            return False
    return True


def address_of(data: bytes | memoryview) -> str:
    """The chunk's name: the SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()
