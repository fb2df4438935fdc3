"""HQ side: ingest of device messages into the database (admin and audit come later)."""
