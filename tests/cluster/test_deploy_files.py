"""The container image and the compose file run exactly what the multi-host run starts on its
hosts (deploy/hosts.py): the application hosts' command and environment, the Redis servers'
arguments, the front's command and nginx configuration. Change one without the others and this
fails. (The running cluster's own processes are checked against the same table in
test_cluster.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config.serving.serve import nginx_conf
from deploy.hosts import (
    APP_COMMAND,
    APP_PORT,
    APP_SIZING,
    APP_WS_PORT,
    DATABASE,
    POSTGRES_PORT,
    REDIS_ARGS,
    REDIS_SHARD_PORTS,
    app_environment,
    front_command,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP_HOSTS = ("app1", "app2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _dockerfile_instructions() -> list[tuple[str, str]]:
    instructions = []
    logical = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        logical += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = logical.strip().partition(" ")
            instructions.append((keyword.upper(), rest))
            logical = ""
    return instructions


def test_the_image_runs_the_app_hosts_command() -> None:
    instructions = _dockerfile_instructions()
    (cmd,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert cmd == APP_COMMAND
    # Nothing wraps it: the command is the whole of what a container runs.
    assert [keyword for keyword, _ in instructions if keyword == "ENTRYPOINT"] == []
    assert ("EXPOSE", f"{APP_PORT} {APP_WS_PORT}") in instructions


def test_every_compose_app_host_runs_the_same_command_and_environment(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    redis_servers = [f"redis{n}:{port}" for n, port in enumerate(REDIS_SHARD_PORTS, start=1)]
    expected = app_environment(
        database_url="set below", redis_servers=redis_servers, allowed_hosts=[]
    )
    for name in APP_HOSTS:
        service = services[name]
        assert service["command"] == APP_COMMAND
        environment = service["environment"]
        for variable in ("REDIS_URL", "CHANNEL_REDIS_URLS", *APP_SIZING):
            assert environment[variable] == expected[variable], variable
        # ${POSTGRES_PASSWORD:?...} is compose's to fill in.
        database = urlsplit(re.sub(r"\$\{[^}]*\}", "password", environment["DATABASE_URL"]))
        assert (database.hostname, database.port, database.path) == (
            "postgres",
            POSTGRES_PORT,
            f"/{DATABASE}",
        )
        assert set(environment["ALLOWED_HOSTS"].split(",")) >= set(APP_HOSTS)
        # Secrets come from the operator, never a default in the file.
        for secret in ("SECRET_KEY", "JWT_SIGNING_KEY", "FIELD_ENCRYPTION_KEYS"):
            assert environment[secret] == f"${{{secret}:?set {secret}}}"


def test_the_redis_servers_run_with_the_clusters_arguments(compose: dict[str, Any]) -> None:
    for number, port in enumerate(REDIS_SHARD_PORTS, start=1):
        command = compose["services"][f"redis{number}"]["command"]
        assert command == ["redis-server", "--port", str(port), *REDIS_ARGS]


def test_the_front_is_config_servings_nginx_over_every_app_host(compose: dict[str, Any]) -> None:
    front = compose["services"]["front"]
    (config,) = front["configs"]
    # The nginx container's files go to its own /tmp (its prefix).
    prefix = "/tmp"  # noqa: S108
    assert front["command"] == front_command("nginx", conf=config["target"], prefix=prefix)
    content = compose["configs"][config["source"]]["content"].replace("$$", "$")
    port = int(front["ports"][0].rsplit(":", 1)[1])
    assert content.rstrip("\n") == nginx_conf(
        Path(prefix),
        host="0.0.0.0",  # noqa: S104 - the front container's own network
        port=port,
        http_upstreams=[f"{name}:{APP_PORT}" for name in APP_HOSTS],
        ws_upstreams=[f"{name}:{APP_WS_PORT}" for name in APP_HOSTS],
    ).rstrip("\n")
