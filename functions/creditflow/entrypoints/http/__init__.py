"""The HTTP surface (Flask): the same app runs in the local runtime and inside the `api` function."""
