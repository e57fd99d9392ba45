"""Fault injection and process tools for MusicFS tests and chaos scenarios.

`musicfs` never imports this package. It drives the real daemon from outside (processes, signals,
a fake NOTIFY_SOCKET) and, in-process, through the one seam `musicfs.core.faults`.
"""
