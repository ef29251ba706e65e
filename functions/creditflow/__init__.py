"""Creditflow: a credit-metered backend for AI-assistant products."""

__version__ = "0.1.0"
