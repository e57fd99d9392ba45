"""Immutable snapshots of the shown tree: what every FUSE lookup, getattr and readdir answers from.

Owns: `Node` and `Tree`. A `Tree` is built completely, off to the side, and never changed after
`Tree.build` returns; the library publishes a new one with a single reference swap, so readers always
see one complete state and a builder that fails halfway changes nothing visible.
Readdir order is by inode number and the offset handed to the kernel is the last inode returned, so a
listing resumes correctly even when a new snapshot was published between two readdir calls.
Concurrency: immutable after build; safe to read from any thread or task without locks.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

ROOT_INODE = 1
GENERATION_MASK = 2**63 - 1


class ShownFile(Protocol):
    """What the tree needs to know of a shown file (see `musicfs.core.types.ViewFile`)."""

    @property
    def inode(self) -> int: ...
    @property
    def viewpath(self) -> bytes: ...
    @property
    def origin_id(self) -> int: ...
    @property
    def relpath(self) -> bytes: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def ctime_ns(self) -> int: ...
    @property
    def span(self) -> tuple[int, int] | None: ...
    @property
    def encoded(self) -> bool: ...


class Node:
    """A folder or a file of the view. Folders have `children` (name -> inode) and `order`.

    A file shows its origin file whole, or (`span` set) `size` bytes of it from `span[0]` on, or
    (`encoded` set) the `size` bytes of the picture its tags hold encoded.
    """

    __slots__ = (
        "children",
        "ctime_ns",
        "encoded",
        "inode",
        "mtime_ns",
        "name",
        "order",
        "origin_id",
        "parent",
        "relpath",
        "size",
        "span",
    )

    def __init__(self, inode: int, parent: int, name: bytes, *, folder: bool) -> None:
        self.inode = inode
        self.parent = parent
        self.name = name
        self.size = 0
        self.mtime_ns = 0
        self.ctime_ns = 0
        self.origin_id = 0
        self.relpath = b""
        self.span: tuple[int, int] | None = None
        self.encoded = False
        self.children: dict[bytes, int] | None = {} if folder else None
        self.order: tuple[int, ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def version(self) -> tuple[int, bytes, int, int, int]:
        """Which origin file, in which state, a file node shows: another version if any field differs.

        (A node showing a span has the span's length here: a change of its file changes the times.)"""
        return (self.origin_id, self.relpath, self.size, self.mtime_ns, self.ctime_ns)

    @property
    def generation(self) -> int:
        """A number that differs between two versions of a file shown under one inode (0 for folders).

        The kernel treats an inode whose generation changed as a new file: it fails I/O on the old one
        and starts the new one with an empty page cache, so bytes of one version never mix with the
        next. Stable within a process, which is all a mount needs.
        """
        if self.children is not None:
            return 0
        return (hash(self.version) & GENERATION_MASK) or 1


class Tree:
    """One complete, immutable view of the library."""

    def __init__(self, nodes: dict[int, Node], file_count: int, total_bytes: int, track_count: int) -> None:
        self._nodes = nodes
        self.file_count = file_count  # every shown file: tracks, covers and their aliases
        self.track_count = track_count  # the files that are tracks (what status and metrics count)
        self.total_bytes = total_bytes

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def items(self) -> Iterator[tuple[int, Node]]:
        return iter(self._nodes.items())

    def lookup(self, parent: int, name: bytes) -> Node | None:
        """The child `name` of folder `parent`. Names are shown in NFC; a name in another Unicode
        form (macOS clients send NFD over SMB and NFS re-exports) finds the same child."""
        folder = self._nodes.get(parent)
        if folder is None or folder.children is None:
            return None
        inode = folder.children.get(name)
        if inode is None and not name.isascii():
            inode = folder.children.get(_nfc(name))
        return None if inode is None else self._nodes[inode]

    def children_after(self, folder: Node, after_inode: int) -> Iterator[Node]:
        """The children of `folder` with an inode above `after_inode`, in inode order."""
        start = bisect.bisect_right(folder.order, after_inode)
        for inode in folder.order[start:]:
            yield self._nodes[inode]

    def path_of(self, node: Node) -> bytes:
        parts = []
        while node.inode != ROOT_INODE:
            parts.append(node.name)
            node = self._nodes[node.parent]
        return b"/".join(reversed(parts))

    @classmethod
    def empty(cls) -> Tree:
        return cls.build((), {})

    @classmethod
    def build(
        cls,
        files: Iterable[ShownFile],
        folder_inodes: Mapping[bytes, int],
        track_count: int | None = None,
    ) -> Tree:
        """Build a snapshot from shown files (`viewpath` like b"Artist/Album/01 x.flac"), of which
        `track_count` are tracks (the caller knows the kinds; None: all of them).

        Raises KeyError when a folder of a viewpath has no inode in `folder_inodes`.
        """
        root = Node(ROOT_INODE, ROOT_INODE, b"", folder=True)
        nodes = {ROOT_INODE: root}
        folders = {b"": root}
        count = total = 0
        for shown in files:
            folder_path, _, name = shown.viewpath.rpartition(b"/")
            parent = _folder(folder_path, folders, nodes, folder_inodes)
            node = Node(shown.inode, parent.inode, name, folder=False)
            node.mtime_ns, node.ctime_ns = shown.mtime_ns, shown.ctime_ns
            node.origin_id, node.relpath, node.span = shown.origin_id, shown.relpath, shown.span
            node.encoded = shown.encoded
            node.size = shown.size if shown.span is None else shown.span[1]
            nodes[node.inode] = node
            assert parent.children is not None
            parent.children[name] = node.inode
            count += 1
            total += node.size
        for folder in folders.values():
            assert folder.children is not None
            folder.order = tuple(sorted(folder.children.values()))
            for child in folder.children.values():
                _carry_times(nodes[child], folder, nodes)
        return cls(nodes, count, total, count if track_count is None else track_count)


def _nfc(name: bytes) -> bytes:
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return name
    return unicodedata.normalize("NFC", text).encode()


def _folder(
    path: bytes, folders: dict[bytes, Node], nodes: dict[int, Node], folder_inodes: Mapping[bytes, int]
) -> Node:
    found = folders.get(path)
    if found is not None:
        return found
    parent_path, _, name = path.rpartition(b"/")
    parent = _folder(parent_path, folders, nodes, folder_inodes)
    node = Node(folder_inodes[path], parent.inode, name, folder=True)
    assert parent.children is not None
    parent.children[name] = node.inode
    nodes[node.inode] = node
    folders[path] = node
    return node


def _carry_times(child: Node, folder: Node, nodes: dict[int, Node]) -> None:
    """A folder's times are the newest of everything below it, carried up to the root."""
    while True:
        if child.mtime_ns <= folder.mtime_ns and child.ctime_ns <= folder.ctime_ns:
            return
        folder.mtime_ns = max(folder.mtime_ns, child.mtime_ns)
        folder.ctime_ns = max(folder.ctime_ns, child.ctime_ns)
        if folder.inode == ROOT_INODE:
            return
        child, folder = folder, nodes[folder.parent]
