"""A tiny pyfuse3 filesystem for testing MusicFS's pyfuse3 patch itself, run as a process by the test:
`python -m tests.process.listing_fs MOUNTPOINT MODE COUNTFILE`.

The root holds the files `a`, `b` and `c`. MODE is how its `opendir` answers: `enosys` raises ENOSYS
(the kernel's no-opendir mode), `fileinfo` returns `FileInfo(fh=inode, cache_readdir=True)`. After
every request it writes how many opendir and readdir requests it has had, and the handle each readdir
was given, to COUNTFILE (JSON), so the test reads them without sending the filesystem a request.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pyfuse3
import trio

NAMES = (b"a", b"b", b"c")


class ListingFS(pyfuse3.Operations):
    def __init__(self, mode: str, counts: Path) -> None:
        super().__init__()
        self.mode = mode
        self.counts = counts
        self.opendirs = 0
        self.readdir_handles: list[int] = []
        self._save()

    def _save(self) -> None:
        record = {"opendir": self.opendirs, "readdir": self.readdir_handles}
        self.counts.with_suffix(".tmp").write_text(json.dumps(record))
        self.counts.with_suffix(".tmp").replace(self.counts)

    def _attributes(self, inode: int) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.st_mode = (stat.S_IFDIR | 0o555) if inode == pyfuse3.ROOT_INODE else (stat.S_IFREG | 0o444)
        attr.entry_timeout = attr.attr_timeout = 300
        return attr

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if inode != pyfuse3.ROOT_INODE and not 2 <= inode < 2 + len(NAMES):
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attributes(inode)

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if parent_inode != pyfuse3.ROOT_INODE or name not in NAMES:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attributes(2 + NAMES.index(name))

    async def opendir(self, inode: int, ctx: Any) -> Any:
        self.opendirs += 1
        self._save()
        if self.mode == "enosys":
            raise pyfuse3.FUSEError(errno.ENOSYS)
        return pyfuse3.FileInfo(fh=inode, cache_readdir=True)

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        self.readdir_handles.append(fh)
        self._save()
        if fh != pyfuse3.ROOT_INODE:
            return
        for index, name in enumerate(NAMES[start_id:], start_id):
            if not pyfuse3.readdir_reply(token, name, self._attributes(2 + index), index + 1):
                return

    async def releasedir(self, fh: int) -> None:
        return None


def main() -> None:
    mountpoint, mode, counts = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    pyfuse3.init(ListingFS(mode, counts), mountpoint, {"ro", "fsname=listingfs"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    os.umask(0o022)
    main()
