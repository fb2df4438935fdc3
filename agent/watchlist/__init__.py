"""The signed watchlist: format, verification, device cache, matcher and admin tools.

See docs/watchlist.md. The device uses :class:`agent.watchlist.manager.WatchlistManager`;
admins use ``raqib watchlist ...`` (:mod:`agent.watchlist.cli`).
"""
