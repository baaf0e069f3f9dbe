"""anchorml worker node: chain listener, job processor, executors."""
