"""The embedded, single-machine runtime: SQLite store, key files."""
