"""Lambda container image sources; ``handler`` is the function entry point."""
