"""Precise refusals of watchlist input, all under :class:`agent.errors.WatchlistError`.

Each class names one reason a bundle, a root document or the cache at rest was
refused; ``reason`` is the short machine-readable name reported to HQ.
"""

from __future__ import annotations

from agent.errors import WatchlistError


class WatchlistRefusedError(WatchlistError):
    """Base of the precise refusals; ``reason`` is a stable snake_case name."""

    reason = "refused"


class OversizedError(WatchlistRefusedError):
    """The bundle, its header or its decompressed content is larger than allowed."""

    reason = "oversized"


class MalformedError(WatchlistRefusedError):
    """The bundle, a document or the content does not follow the format."""

    reason = "malformed"


class TruncatedError(MalformedError):
    """The bundle ends before the lengths it announces."""

    reason = "truncated"


class BadSignatureError(WatchlistRefusedError):
    """A signature by a trusted key does not verify over the signed bytes."""

    reason = "bad_signature"


class UnknownKeyError(WatchlistRefusedError):
    """Signed only by key ids the trusted root does not list."""

    reason = "unknown_key"


class RevokedKeyError(UnknownKeyError):
    """Signed by a key that a newer root rotated out."""

    reason = "revoked_key"


class BelowThresholdError(WatchlistRefusedError):
    """Fewer distinct valid signatures by trusted keys than the root's threshold."""

    reason = "below_threshold"


class WrongFleetError(WatchlistRefusedError):
    """The list is for another fleet than the trusted root's."""

    reason = "wrong_fleet"


class RollbackError(WatchlistRefusedError):
    """The version is older than the one the device holds."""

    reason = "rollback"


class ReplayError(RollbackError):
    """The version equals the one the device holds (a replay, or the retained copy again)."""

    reason = "replay"

    def __init__(self, message: str, *, identical: bool = False) -> None:
        super().__init__(message)
        self.identical = identical
        """True when the bundle is byte-identical to the one applied (a retained re-delivery)."""


class ExpiredError(WatchlistRefusedError):
    """The list's ``expires_at`` is not after the reference time."""

    reason = "expired"


class WrongBaseError(WatchlistRefusedError):
    """A delta names another base version than the device holds."""

    reason = "wrong_base"


class HashMismatchError(WatchlistRefusedError):
    """The content, or the list a delta produces, does not have the signed hash or length."""

    reason = "hash_mismatch"


class CacheTamperedError(WatchlistRefusedError):
    """The cache at rest does not verify: it was edited on disk or is corrupt."""

    reason = "cache_tampered"
