"""diffcore."""
