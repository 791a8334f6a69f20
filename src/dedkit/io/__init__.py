"""File formats: reading and writing only, no processing."""
