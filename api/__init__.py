"""anchorml user-facing surfaces: the FastAPI gateway and the CLI."""
