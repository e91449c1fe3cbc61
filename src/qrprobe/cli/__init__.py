"""Command-line interface (``qrprobe``)."""
