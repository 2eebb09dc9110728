"""The gRPC API: Mayastor's io-engine v1 services over one server (port 10124)."""
