"""The mount table: parsing /proc/self/mountinfo, shared by the daemon (stale and live mounts) and the
origins (which filesystem an origin is on).

Owns: `MountEntry`, `parse_mountinfo` (octal escapes such as \\040 decoded, malformed lines skipped)
and `read_mountinfo`. The super options are kept: a FUSE mount's `user_id=` names who mounted it.
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
    super_options: str = ""  # e.g. "ro,user_id=0,group_id=0" for a FUSE mount

    def option(self, name: str) -> str | None:
        """The value of super option `name` (`user_id` of a FUSE mount: who mounted it), or None."""
        for option in self.super_options.split(","):
            key, _, value = option.partition("=")
            if key == name:
                return value
        return None


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
                    fields[separator + 3].decode(errors="replace") if len(fields) > separator + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return entries


def _unescape(field: bytes) -> bytes:
    return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field)
