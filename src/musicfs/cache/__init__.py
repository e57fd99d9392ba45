"""The verified content cache: chunks of origin files kept on a local disk, named by their SHA-256.

`store.ChunkStore` is the whole public surface (with the `VersionKey`, `Watermarks`, `CacheUsage` and
`CheckReport` values it takes and returns); `records` is its SQL and `space` its watermark arithmetic.
The cache is an optimisation only: any failure of its disk turns it into a pass-through, never into
an error for a reader. It imports nothing of MusicFS but `core`.
"""
