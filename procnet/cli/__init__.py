"""procnet command line (placeholder)."""
