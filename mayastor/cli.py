"""`io-engine-client` console script (the command tree lives in mayastor/client)."""

from .client.main import main

__all__ = ["main"]
