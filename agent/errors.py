"""One exception hierarchy for the package.

Two roots, as in python-tuf: ``InputError`` is bad untrusted input (a frame, an
MQTT payload, a watchlist file, a config file) and says precisely what was wrong;
``TransportError`` is a failure of something outside us (broker, disk, camera).
Misuse by calling code is a plain ``RuntimeError``.
"""

from __future__ import annotations


class RaqibError(Exception):
    """Base of every error Raqib raises on purpose."""


class InputError(RaqibError):
    """Untrusted input was refused; the message says why."""


class ConfigError(InputError):
    """The configuration file is missing, unreadable or has a bad value (the key is named)."""


class PayloadError(InputError):
    """An MQTT payload or message is malformed, oversized or fails verification."""


class CommandError(InputError):
    """A verified remote command cannot be carried out (bad arguments, feature turned off)."""


class WatchlistError(InputError):
    """A watchlist file or update is malformed, unsigned, stale or tampered."""


class FrameError(InputError):
    """A frame or video stream is corrupt or cannot be decoded."""


class TransportError(RaqibError):
    """Something outside the process failed: broker, network, disk or device."""


class CaptureError(TransportError):
    """The camera or video source cannot be opened or stopped delivering frames."""


class ModelError(RaqibError):
    """A model file is missing, corrupt or has the wrong signature."""


class StorageError(TransportError):
    """The local database or disk refused a write (full disk, read-only, corrupt)."""
