"""Health scans: replica wipes and checksums (TestRpc), per-replica digests, nexus verify/repair."""
