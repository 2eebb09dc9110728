"""mayastor-shell: a configshell-fb REPL over the daemon's gRPC API and the raw nvmet view."""
