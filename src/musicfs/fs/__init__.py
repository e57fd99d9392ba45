"""The FUSE edge: a pyfuse3.Operations adapter over tree snapshots and origin gateways."""
