"""Adapters: concrete implementations of the ports."""
