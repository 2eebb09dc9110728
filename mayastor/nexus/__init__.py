"""Nexus: children URI registry, dm stack, state machine, service, watcher."""
