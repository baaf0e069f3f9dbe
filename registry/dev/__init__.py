"""Dev tooling, kept out of the SDK's core: the JSON-RPC server of the embedded chain
(:mod:`~registry.dev.devserver`), the heartbeat that keeps time moving on an idle dev chain
(:mod:`~registry.dev.heartbeat`), an anvil process (:mod:`~registry.dev.anvil`), child processes
that die with their parent (:mod:`~registry.dev.procs`), the demo models
(:mod:`~registry.dev.demo`) and the one devnet that puts them together
(:mod:`~registry.dev.devnet`), used by ``anchorml up``, the tests and ``bench/``.

Nothing outside dev tools imports this package."""
