"""Raqib: on-device plate reading, watchlist matching and evidence for police cameras."""

__version__ = "0.1.0"
