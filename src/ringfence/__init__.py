"""Ringfence: inventory visibility and allocation."""

__version__ = "0.1.0"
