"""Rebuild: copying a healthy child onto a new one (the Cython copier, paced and checkpointed) and
the checksum scans that verify children against each other."""
