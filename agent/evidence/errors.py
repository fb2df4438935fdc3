"""Errors of the evidence package, under the project's two roots (``agent.errors``).

``SegmentFormatError`` and ``LedgerEntryError`` are bad untrusted input (a file
or a ledger entry that does not parse or verify); ``StorageFullError`` is the
disk refusing more footage, a ``StorageError``.
"""

from __future__ import annotations

from agent.errors import InputError, PayloadError, StorageError


class SegmentFormatError(InputError):
    """A segment file is not a Raqib sealed segment, or its header is malformed."""


class SegmentDecryptError(InputError):
    """A segment cannot be decrypted: wrong HQ key, or its header or a chunk was altered."""


class LedgerEntryError(PayloadError):
    """A ledger entry is malformed, or its signature or chain link does not verify.

    A ``PayloadError``, so the MQTT ingest refuses a malformed entry like any bad message.
    """


class StorageFullError(StorageError):
    """The evidence directory reached its size limit or the disk is full; recording stopped."""
