"""What the FUSE stack under MusicFS is and which fast paths it offers: `musicfs --version`.

Owns: `describe()`, the version lines: MusicFS, the pyfuse3 imported and the libfuse it loaded
(asked through ctypes for `fuse_pkgversion()`), and two fast paths, each with its reason:
kernel-cached folder listings (the mode `musicfs.fs.listings` chooses: the patched pyfuse3 set-up
builds hands readdir the inode without opendir; stock pyfuse3 cannot) and passthrough reads
(libfuse 3.16+ and Linux 6.9+ hand the kernel the origin file; pyfuse3 must give access to it).
Nothing is mounted, so what the running kernel would grant is not asked.
Concurrency: plain reads of loaded modules; safe from any thread.
"""

from __future__ import annotations

import ctypes

import pyfuse3

from musicfs import __version__
from musicfs.fs.listings import Listings

LIBFUSE = "libfuse3.so.3"  # the soname pyfuse3 links against: the library already loaded


def describe(listings: Listings) -> str:
    """The lines `musicfs --version` prints, for a mount that would use `listings`."""
    libfuse = ctypes.CDLL(LIBFUSE)
    libfuse.fuse_pkgversion.restype = ctypes.c_char_p
    libfuse_version = libfuse.fuse_pkgversion().decode()
    pyfuse3_version = pyfuse3.__version__
    cached = f"{'yes' if listings.kernel else 'no'} ({listings.why})"
    if hasattr(libfuse, "fuse_passthrough_open"):
        passthrough = (
            f"no (libfuse {libfuse_version} has it, pyfuse3 {pyfuse3_version} gives no access to it)"
        )
    else:
        passthrough = f"no (libfuse {libfuse_version} has none: it needs 3.16+ and Linux 6.9+)"
    return "\n".join(
        [
            f"musicfs {__version__}",
            f"pyfuse3 {pyfuse3_version}, libfuse {libfuse_version}",
            f"kernel-cached folder listings: {cached}",
            f"passthrough reads: {passthrough}",
        ]
    )
