"""io-engine-client: the v1 command tree of Mayastor's CLI, talking gRPC to a daemon (ours or io-engine)."""
