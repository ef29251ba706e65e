"""`python -m creditflow …`: the command-line interface."""

from .entrypoints.cli import main

raise SystemExit(main())
