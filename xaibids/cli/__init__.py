"""Command-line entry points (thin: parse, configure, call the workflows)."""
