"""The `preserve` command-line interface."""
