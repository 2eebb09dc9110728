"""Cython hot paths: the rebuild copy loop (copy.pyx) and the checksum scanner (scan.pyx).

Both work on file descriptors with one aligned buffer, release the GIL for the whole loop and do no
per-byte Python work; the Python callers (mayastor/rebuild) decide what to copy or scan, pace it and
record progress between calls."""
