"""Thin entry points: HTTP, triggers, CLI. They translate and delegate to services."""
