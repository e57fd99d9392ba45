"""The mount table: parsing /proc/self/mountinfo, shared by the daemon (stale and live mounts) and the
origins (which filesystem an origin is on).

Owns: `MountEntry`, `parse_mountinfo` (octal escapes such as \\040 decoded, malformed lines skipped)
and `read_mountinfo`.
Concurrency: pure parsing plus one read of /proc; safe from any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountEntry:
    mount_point: bytes
    fstype: str
    source: str


def read_mountinfo() -> bytes:
    with open(MOUNTINFO, "rb") as handle:
        return handle.read()


def parse_mountinfo(text: bytes) -> list[MountEntry]:
    """Parse the lines of /proc/PID/mountinfo (see proc(5)); malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(b" ")
        try:
            separator = fields.index(b"-", 6)
            entries.append(
                MountEntry(
                    _unescape(fields[4]),
                    fields[separator + 1].decode(errors="replace"),
                    _unescape(fields[separator + 2]).decode(errors="replace"),
                )
            )
        except (ValueError, IndexError):
            continue
    return entries


def _unescape(field: bytes) -> bytes:
    return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field)
