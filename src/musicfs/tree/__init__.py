"""The pure tree layer: from track tags to the paths shown in the mount (no I/O, FUSE or SQLite)."""
