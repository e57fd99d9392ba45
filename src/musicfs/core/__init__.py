"""Core types, errors and configuration shared by every layer; imports nothing else of MusicFS."""
