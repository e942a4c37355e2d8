"""Fast paths in Cython for per-frame and per-packet work (compiled at install time)."""
