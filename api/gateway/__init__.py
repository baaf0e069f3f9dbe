"""The anchorml gateway: OpenAI-compatible inference, the registry, the job board, worker nodes
and a dashboard, over HTTP (FastAPI on uvicorn).

- :mod:`~api.gateway.app` — the app factory; :mod:`~api.gateway.config` — its typed config;
- :mod:`~api.gateway.deps` — dependency injection; :mod:`~api.gateway.errors` — the one error
  handler; :mod:`~api.gateway.auth` — callers and rate limits;
- :mod:`~api.gateway.upstream` (workers), :mod:`~api.gateway.onchain` (jobs),
  :mod:`~api.gateway.watcher` / :mod:`~api.gateway.index` (chain events);
- :mod:`~api.gateway.routes` — one module per resource; ``static/`` — the dashboard.
"""

from api.gateway.app import create_app
from api.gateway.config import GatewayConfig, load_config

__all__ = ["GatewayConfig", "create_app", "load_config"]
