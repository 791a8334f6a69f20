"""The ``dedkit`` command: parses options and calls the library (no logic here)."""
