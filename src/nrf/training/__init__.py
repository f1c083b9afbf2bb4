"""Training loop, run directories, checkpoints and reports."""
