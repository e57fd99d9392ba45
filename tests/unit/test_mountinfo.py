from __future__ import annotations

from musicfs.mountinfo import parse_mountinfo

SAMPLE = (
    b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    b"40 22 0:39 / /mnt/my\\040music\\011x rw,nosuid - fuse.musicfs musicfs ro,user_id=0\n"
    b"41 22 0:40 / /mnt/caf\\351 rw - fuse.bindfs /srv rw\n"
    b"garbage line\n"
)


def test_escaped_mount_points_are_decoded_exactly() -> None:
    entries = parse_mountinfo(SAMPLE)
    assert [e.mount_point for e in entries] == [b"/", b"/mnt/my music\tx", b"/mnt/caf\xe9"]
    assert entries[1].fstype == "fuse.musicfs"
    assert entries[1].source == "musicfs"
    assert entries[1].option("user_id") == "0" and entries[1].option("allow_other") is None
    assert entries[2].fstype == "fuse.bindfs"


def test_optional_fields_are_skipped() -> None:
    line = b"50 22 0:41 / /m rw shared:5 master:3 - fuse.musicfs musicfs ro\n"
    (entry,) = parse_mountinfo(line)
    assert entry.fstype == "fuse.musicfs"
