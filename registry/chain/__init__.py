"""Chain access: compiling and loading contract artifacts, connecting, sending transactions,
decoding reverts, reading events and deploying. Dev chains (the JSON-RPC server of the embedded
chain, the heartbeat) live in :mod:`registry.dev`."""
