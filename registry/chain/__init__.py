"""Chain access: compiling and loading contract artifacts, connecting, sending transactions,
decoding reverts, reading events, deploying, and serving the embedded chain over JSON-RPC."""
