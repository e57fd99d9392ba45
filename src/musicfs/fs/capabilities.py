"""What the FUSE stack under MusicFS is and which fast paths it offers: `musicfs --version`.

Owns: `describe()`, the version lines: MusicFS, the pyfuse3 imported and the libfuse it loaded
(asked through ctypes for `fuse_pkgversion()`), and two fast paths, each with its reason:
kernel-cached folder listings (pyfuse3 must let an opened folder be marked cacheable, FOPEN_CACHE_DIR)
and passthrough reads (libfuse 3.16+ and Linux 6.9+ hand the kernel the origin file; pyfuse3 must
give access to it). Nothing is mounted, so what the running kernel would grant is not asked.
Concurrency: plain reads of loaded modules; safe from any thread.
"""

from __future__ import annotations

import ctypes

import pyfuse3

from musicfs import __version__

LIBFUSE = "libfuse3.so.3"  # the soname pyfuse3 links against: the library already loaded


def describe() -> str:
    """The lines `musicfs --version` prints."""
    libfuse = ctypes.CDLL(LIBFUSE)
    libfuse.fuse_pkgversion.restype = ctypes.c_char_p
    libfuse_version = libfuse.fuse_pkgversion().decode()
    pyfuse3_version = pyfuse3.__version__
    if hasattr(pyfuse3.FileInfo, "cache_readdir"):
        listings = "yes (pyfuse3 can mark an opened folder cacheable)"
    else:
        listings = f"no (pyfuse3 {pyfuse3_version} cannot mark an opened folder cacheable)"
    if hasattr(libfuse, "fuse_passthrough_open"):
        passthrough = (
            f"no (libfuse {libfuse_version} has it, pyfuse3 {pyfuse3_version} gives no access to it)"
        )
    else:
        passthrough = f"no (libfuse {libfuse_version} has none: 3.16 or later, with Linux 6.9 or later)"
    return "\n".join(
        [
            f"musicfs {__version__}",
            f"pyfuse3 {pyfuse3_version}, libfuse {libfuse_version}",
            f"kernel-cached folder listings: {listings}",
            f"passthrough reads: {passthrough}",
        ]
    )
