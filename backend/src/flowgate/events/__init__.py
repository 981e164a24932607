"""Live events for browsers (Server-Sent Events)."""
