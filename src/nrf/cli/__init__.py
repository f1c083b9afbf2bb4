"""Command-line interface (``nrf --help``)."""
