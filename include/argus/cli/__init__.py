"""The ``argus`` command line: its commands, the demo, the round trip through every service."""

from argus.cli.main import main

__all__ = ["main"]
