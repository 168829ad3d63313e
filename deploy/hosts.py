"""What every host of a Parley deployment runs: one table, read by the multi-host run
(deploy/cluster.py starts exactly these commands in its namespaces), and checked against the
container image (deploy/Dockerfile) and the compose file (deploy/compose.yaml) by
tests/cluster/test_deploy_files.py, so the three cannot drift apart.

An application host runs `make serve`'s entry point (config/serving: web, websockets, the
webhook worker under one supervisor), serving on all of the host's addresses: REST on
APP_PORT, websockets on APP_WS_PORT, for the front (nginx) to balance over the hosts. Every
host runs the same command; the first to start migrates (under a PostgreSQL advisory lock,
config/serving/serve.py), the others wait their turn and find nothing to do.

PostgreSQL and the Redis servers run on the data host (the compose file gives each its own
container): the first Redis is also the cache (REDIS_URL), every one of them a channel layer
shard (CHANNEL_REDIS_URLS).
"""

from __future__ import annotations

APP_PORT = 8000
APP_WS_PORT = 8001
POSTGRES_PORT = 5432
REDIS_SHARD_PORTS = (6379, 6380)
DATABASE = "parley"

# argv of an application host; "python" is the image's interpreter (the venv's in the cluster).
APP_COMMAND = [
    "python",
    "-m",
    "config.serving",
    "--front",
    "none",
    "--host",
    "0.0.0.0",  # noqa: S104 - a host serves the front over its own network
    "--port",
    str(APP_PORT),
    "--ws-port",
    str(APP_WS_PORT),
]

# Per-host sizing for the processes under the supervisor (the same on every host): one web
# worker, one websocket process, one webhook worker -- a small host; raise on bigger ones.
APP_SIZING = {"WEB_WORKERS": "1", "WS_WORKERS": "1", "WEBHOOK_WORKERS": "1"}

# argv of each Redis server on the data host, after the port (no persistence: a restarted
# channel layer shard or cache starts empty, which Parley expects).
REDIS_ARGS = ["--save", "", "--appendonly", "no", "--protected-mode", "no"]


def front_command(nginx: str, *, conf: str, prefix: str) -> list[str]:
    """The front: nginx in the foreground with config/serving's configuration (`nginx_conf`)
    balancing over every application host."""
    return [nginx, "-c", conf, "-p", prefix, "-g", "daemon off;"]


def app_command(python: str) -> list[str]:
    """APP_COMMAND with `python` as the interpreter."""
    return [python, *APP_COMMAND[1:]]


def app_environment(
    *, database_url: str, redis_servers: list[str], allowed_hosts: list[str]
) -> dict[str, str]:
    """The variables that make an application host one of the deployment: the one PostgreSQL,
    the first Redis ("host:port") as the cache, every Redis as a channel layer shard."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://{redis_servers[0]}/0",
        "CHANNEL_REDIS_URLS": ",".join(f"redis://{server}/0" for server in redis_servers),
        "ALLOWED_HOSTS": ",".join(allowed_hosts),
        **APP_SIZING,
    }
