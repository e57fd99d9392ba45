"""The daemon: composition root, lifecycle, systemd integration and mountpoint handling."""
