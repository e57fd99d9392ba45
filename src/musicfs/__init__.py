"""MusicFS: a read-only FUSE view of a music collection, organised by its tags."""

__version__ = "0.1.0"
