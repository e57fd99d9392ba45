"""The pyfuse3 Operations of MusicFS: lookups and listings from the current tree, reads from origins.

Owns: translating FUSE requests into tree lookups and gateway reads (of the part of the origin file a
node shows, for a cover embedded in a track; a cover stored encoded in a track's tags is decoded at
open, by the `PictureDecoder` it is given, and served from memory; the last few decoded images
are kept, by version, for the next opens, which only check the track's times), the table of open files, the
attributes shown (files 0444, folders 0555, owned by the mounting user, sizes and times from the
origin), and the extended attributes `user.musicfs.origin` (files: where the bytes really are) and
`user.musicfs.pid` and `user.musicfs.control` (root: the PID of the daemon serving this mount and its
control socket; answered by name but not listed, so `cp -a` and `rsync -X` do not copy them, 7.6).
Folder listings are kept by the kernel or asked of the daemon at every open, as chosen at start
(`musicfs.fs.listings`): with kernel-cached listings `opendir` answers ENOSYS and `readdir` is given
the folder's inode; otherwise `opendir` hands out the folder's inode as its handle.
Concurrency: every handler runs as a trio task on the event-loop thread. Handlers read
`tree_source()` once per request and use that snapshot throughout; they never block: origin I/O goes
through `OriginGateway`, which keeps slow work off the loop with deadlines. Every handler is wrapped
by `fuse_handler`, so every request is answered.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyfuse3

from musicfs.core.errors import OriginFileChanged
from musicfs.core.ports import PictureDecoder
from musicfs.core.types import VersionKey
from musicfs.fs.errors import fuse_handler, read_only
from musicfs.origins.gateway import OpenHandle, OriginGateway
from musicfs.tree.snapshot import Node, Tree

XATTR_ORIGIN = b"user.musicfs.origin"
XATTR_PID = b"user.musicfs.pid"
BLOCK_SIZE = 128 * 1024
RECENT_IMAGES_BYTES = 32 << 20  # decoded covers kept for the next opens (`_image`)


@dataclass(slots=True)
class OpenFile:
    """An open view file: the origin handle, which version of which inode it was opened at, and the
    part of the origin file it shows (None: all of it)."""

    gateway: OriginGateway
    handle: OpenHandle
    inode: int
    version: tuple[int, bytes, int, int, int]
    span: tuple[int, int] | None = None
    image: bytes | None = None  # a cover decoded from the track's tags at open: served from here


class MusicOperations(pyfuse3.Operations):
    """Serve the tree returned by `tree_source` (called per request) from the origins' gateways."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        tree_source: Callable[[], Tree],
        gateways: Mapping[int, OriginGateway],
        attr_timeout: float,
        root_xattrs: Mapping[bytes, bytes] | None = None,
        *,
        kernel_listings: bool = False,
        decode_picture: PictureDecoder | None = None,
    ) -> None:
        super().__init__()
        self._tree = tree_source
        self._gateways = gateways
        self._attr_timeout = attr_timeout
        self._kernel_listings = kernel_listings
        self._decode_picture = decode_picture  # the composition root gives it; EIO for such covers without
        self._root_xattrs = dict(root_xattrs or {XATTR_PID: str(os.getpid()).encode()})
        self._uid, self._gid = os.getuid(), os.getgid()
        self._open_files: dict[int, OpenFile] = {}
        # The version each inode was last opened at: the kernel may keep its cached pages only when
        # the next open is of the same version (see `open`).
        self._opened_versions: dict[int, tuple[int, bytes, int, int, int]] = {}
        self._handles = itertools.count(1)
        self._images: OrderedDict[tuple[int, bytes, int, int, int], bytes] = OrderedDict()
        self.reads_in_flight = 0

    def _attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = node.inode
        attr.generation = node.generation
        attr.entry_timeout = self._attr_timeout
        attr.attr_timeout = self._attr_timeout
        attr.st_mode = 0o040555 if node.is_dir else 0o100444
        attr.st_nlink = 2 if node.is_dir else 1
        attr.st_uid, attr.st_gid = self._uid, self._gid
        attr.st_rdev = 0
        attr.st_size = node.size
        attr.st_blksize = BLOCK_SIZE
        attr.st_blocks = (node.size + 511) // 512
        attr.st_atime_ns = node.mtime_ns
        attr.st_mtime_ns = node.mtime_ns
        attr.st_ctime_ns = node.ctime_ns
        return attr

    def _node(self, inode: int) -> Node:
        node = self._tree().get(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    @fuse_handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node = self._tree().lookup(parent_inode, name)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attributes(node)

    @fuse_handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attributes(self._node(inode))

    @fuse_handler
    async def forget(self, inode_list: Any) -> None:
        """Inode numbers are never reused, so there is no lookup count to keep."""

    @fuse_handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        if self._kernel_listings:
            # The kernel's no-opendir mode, asked for once and kept for the mount: it keeps every
            # listing until told the folder changed, and readdir then gets the inode (patched pyfuse3).
            raise pyfuse3.FUSEError(errno.ENOSYS)
        if not self._node(inode).is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @fuse_handler
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        # `fh` is the folder's inode in both modes: the handle opendir handed out, or the inode itself.
        tree = self._tree()
        folder = tree.get(fh)
        if folder is None:
            return
        for child in tree.children_after(folder, start_id):
            if not pyfuse3.readdir_reply(token, child.name, self._attributes(child), child.inode):
                return

    @fuse_handler
    async def releasedir(self, fh: int) -> None:
        return None

    @fuse_handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        node = self._node(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        gateway = self._gateways[node.origin_id]
        if node.encoded:
            return self._opened(node, gateway, OpenHandle(-1), await self._image(node, gateway))
        if node.span is None:
            version = VersionKey(node.origin_id, node.relpath, node.size, node.mtime_ns, node.ctime_ns)
            opened = await gateway.open(node.relpath, version)
        else:  # part of a track (an embedded cover): its bytes are where the scan found them only in
            # the version it scanned, and they are read straight from the origin, never cached
            opened = await gateway.open_unchanged(node.relpath, node.mtime_ns, node.ctime_ns)
        return self._opened(node, gateway, opened)

    async def _image(self, node: Node, gateway: OriginGateway) -> bytes:
        """The image of an encoded cover: decoded again only when the last decodes are of other
        versions (a decode cost ~37 ms for 500 KB; MPD opens the cover for every `albumart` chunk)."""
        image = self._images.get(node.version)
        if image is not None:
            self._images.move_to_end(node.version)
            await gateway.close(await gateway.open_unchanged(node.relpath, node.mtime_ns, node.ctime_ns))
            return image
        image = await self._decoded(node, gateway)
        self._images[node.version] = image
        while sum(map(len, self._images.values())) > RECENT_IMAGES_BYTES:
            self._images.popitem(last=False)
        return image

    async def _decoded(self, node: Node, gateway: OriginGateway) -> bytes:
        """The picture a track's tags hold encoded, decoded from the track as the scan saw it (its
        times unchanged) and exactly of the size shown: anything else is the file having changed."""
        if self._decode_picture is None:
            raise pyfuse3.FUSEError(errno.EIO)
        image = await gateway.decode_unchanged(
            node.relpath, node.mtime_ns, node.ctime_ns, self._decode_picture
        )
        if image is None or len(image) != node.size:
            raise OriginFileChanged(f"{os.fsdecode(node.relpath)} changed since the last scan")
        return image

    def _opened(
        self, node: Node, gateway: OriginGateway, opened: OpenHandle, image: bytes | None = None
    ) -> pyfuse3.FileInfo:
        inode = node.inode
        handle = next(self._handles)
        self._open_files[handle] = OpenFile(gateway, opened, inode, node.version, node.span, image)
        # Pages the kernel holds for this inode may be of another version (read through a handle
        # opened before a change): keep them only when the last open was of this same version.
        keep_cache = self._opened_versions.get(inode) == node.version
        self._opened_versions[inode] = node.version
        return pyfuse3.FileInfo(fh=handle, keep_cache=keep_cache)

    @fuse_handler
    async def read(self, fh: int, offset: int, size: int) -> bytes:
        opened = self._open_files.get(fh)
        if opened is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        current = self._tree().get(opened.inode)
        if current is None or current.version != opened.version:
            # The file changed (or went) since this handle was opened: its origin bytes are now of
            # another version, and a mix of two versions is never served.
            raise pyfuse3.FUSEError(errno.EIO)
        if opened.image is not None:
            return opened.image[offset : offset + size]
        if opened.span is not None:
            start, length = opened.span
            if offset >= length:
                return b""
            offset, size = start + offset, min(size, length - offset)
        self.reads_in_flight += 1
        try:
            data = await opened.gateway.read(opened.handle, size, offset)
            # pyfuse3 replies from any buffer; a bytearray from the page-cache path saves a copy.
            return cast(bytes, data)
        finally:
            self.reads_in_flight -= 1

    @fuse_handler
    async def release(self, fh: int) -> None:
        opened = self._open_files.pop(fh, None)
        if opened is not None and opened.image is None:
            await opened.gateway.close(opened.handle)

    @fuse_handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        tree = self._tree()
        stat = pyfuse3.StatvfsData()
        stat.f_bsize = stat.f_frsize = BLOCK_SIZE
        stat.f_blocks = (tree.total_bytes + BLOCK_SIZE - 1) // BLOCK_SIZE
        stat.f_bfree = stat.f_bavail = 0
        stat.f_files = len(tree)
        stat.f_ffree = stat.f_favail = 0
        stat.f_namemax = 255
        return stat

    @fuse_handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        value = self._xattrs(self._node(inode)).get(name)
        if value is None:
            raise pyfuse3.FUSEError(errno.ENODATA)
        return value

    @fuse_handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        if inode == pyfuse3.ROOT_INODE:
            return []  # the root's attributes steer `musicfs` commands: unlisted, so backups never copy them
        return list(self._xattrs(self._node(inode)))

    def _xattrs(self, node: Node) -> dict[bytes, bytes]:
        if node.inode == pyfuse3.ROOT_INODE:
            return self._root_xattrs
        if node.is_dir:
            return {}
        return {XATTR_ORIGIN: self._gateways[node.origin_id].origin.abspath(node.relpath)}

    setattr = mknod = mkdir = unlink = rmdir = symlink = rename = link = read_only
    write = create = setxattr = removexattr = read_only
