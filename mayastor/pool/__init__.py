"""Pools: a dm-thin pool over one or more disks, described by an on-disk label on each disk."""
