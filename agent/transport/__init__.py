"""Device-to-HQ transport: topic scheme, durable outbox and the MQTT uplink."""
