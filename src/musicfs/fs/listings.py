"""Who keeps folder listings: the kernel (until MusicFS says a folder changed) or nobody.

Owns: choosing the listings mode of a mount, once at start, from what the installed pyfuse3 can do,
and describing the FUSE stack (pyfuse3, libfuse, the mode) for the log and `musicfs --version`.
- kernel-cached: `opendir` answers ENOSYS. The kernel then stops sending opendir and releasedir and
  keeps every listing it has read in the folder's page cache, until `invalidate_inode` of that folder
  (sent for every folder whose listing changed, `musicfs.fs.invalidate`): a second walk asks the
  daemon nothing. It needs a pyfuse3 that then hands `readdir` the folder's inode (stock pyfuse3 3.5
  hands it 0, and every folder would look empty): the build of `scripts/build-pyfuse3.sh`, which
  names the feature `readdir_inode_without_opendir` in `pyfuse3.FEATURES`.
- daemon: `opendir` hands out the folder's inode as its handle and the kernel keeps no listing, so
  every `ls` costs opendir, readdir and releasedir: what stock pyfuse3 allows.
`MUSICFS_LISTINGS=kernel|daemon` forces a mode (tests, benchmarks); `auto` or unset picks the best
the installed pyfuse3 can do. Forcing kernel on a pyfuse3 that cannot is a ConfigError (exit 2).
Concurrency: pure functions of the environment, called on the main thread before the mount.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import pyfuse3

from musicfs.core.errors import ConfigError

VARIABLE = "MUSICFS_LISTINGS"
FEATURE = "readdir_inode_without_opendir"
BUILD_HINT = "scripts/build-pyfuse3.sh builds one"


@dataclass(frozen=True, slots=True)
class Listings:
    """The chosen mode: `kernel` True for kernel-cached listings; `why` says what decided it."""

    kernel: bool
    why: str

    @property
    def name(self) -> str:
        return "kernel-cached" if self.kernel else "daemon"

    def describe(self) -> str:
        return f"listings: {self.name} ({self.why})"


def choose(module: ModuleType = pyfuse3, environ: Mapping[str, str] = os.environ) -> Listings:
    """The listings mode for a mount with `module` as pyfuse3, honouring MUSICFS_LISTINGS."""
    wanted = environ.get(VARIABLE, "").strip().lower() or "auto"
    version = getattr(module, "__version__", "unknown")
    capable = FEATURE in getattr(module, "FEATURES", ())
    if wanted not in ("auto", "kernel", "daemon"):
        raise ConfigError(f"{VARIABLE} must be kernel, daemon or auto, not {environ[VARIABLE]!r}")
    if wanted == "kernel" and not capable:
        raise ConfigError(
            f"{VARIABLE}=kernel needs a pyfuse3 that hands readdir the folder's inode when opendir "
            f"answers ENOSYS; pyfuse3 {version} does not ({BUILD_HINT})"
        )
    if wanted != "auto":
        return Listings(wanted == "kernel", f"{VARIABLE}={wanted}")
    if capable:
        return Listings(True, f"pyfuse3 {version}")  # short: it is shown at a terminal too
    return Listings(False, f"pyfuse3 {version} cannot hand readdir the inode without opendir; {BUILD_HINT}")
