"""The package version; the C core is built with the same string (see _build_ffi)."""
__version__ = "0.1.0"
