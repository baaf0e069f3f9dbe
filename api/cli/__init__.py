"""The `anchorml` command-line interface."""
