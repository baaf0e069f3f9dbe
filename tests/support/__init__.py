"""Test support: one fixture module per real part the suites run against.

``chain`` (anvil, the deployed world and its actors), ``devnet`` (a whole devnet with worker
processes), ``gateway`` (a devnet with the demo models published, gateways on it), ``faults``
(a JSON-RPC proxy that fails requests) and ``ipfs`` (a throw-away js-ipfs daemon). pytest puts
``tests/`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so they import as ``support.chain``.
"""
