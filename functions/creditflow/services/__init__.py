"""Use cases, written once against the ports."""
