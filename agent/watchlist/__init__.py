"""The watchlist cached on the device and the matcher that checks reads against it."""
