"""Board-specific adapters (Pi camera, GPIO alert, GNSS, watchdog), each with a simulator."""
