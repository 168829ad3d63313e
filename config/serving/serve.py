"""`make serve`: Parley's production profile on PostgreSQL + Redis.

    .venv/bin/python -m config.serving [--topology split|asgi] [--front auto|nginx|none]
                                    [--port 8000] [--ws-port 8001]

What it does, in order:
1. Environment: DEBUG=0, DATABASE_URL (default postgres://postgres@127.0.0.1:5432/parley),
   REDIS_URL (default redis://127.0.0.1:6379/0). SECRET_KEY / JWT_SIGNING_KEY (and the Fernet
   key of FIELD_ENCRYPTION_KEYS) come from the environment; when absent they are generated once
   into .local/serve-secrets.json (mode 0600) so restarts keep tokens valid and encrypted
   secrets readable -- a real deployment passes its own. SECURE_SSL_REDIRECT
   defaults to 0 here because TLS is terminated in front of these servers (docs/operations.md).
2. Creates the database if missing, `migrate`, `collectstatic`, `check`.
3. Serves, by default in the *split* topology chosen by measurement (docs/operations.md):
   - REST, admin, pages: granian WSGI, one worker per core (4 threads each), connections
     through Django's psycopg pool;
   - websockets: uvicorn ASGI (config/serving/asgi_graceful.py), closing websockets with 1001
     on SIGTERM;
   - in front, with --front nginx (the default when nginx is installed), nginx on --port sends
     /ws/ to uvicorn and everything else to granian: one origin for the chat page. With
     --front none, granian listens on --port and uvicorn on --ws-port (it serves the whole app
     too, so a browser may use that one origin at ASGI speed).
   `--topology asgi` serves everything through uvicorn on --port instead (N workers sharing the
   port with SO_REUSEPORT).
4. Supervises them (config/serving/supervisor.py): a process that exits -- the webhook worker,
   a server -- is started again with backoff, logged; nothing else stops. SIGTERM/SIGINT are
   forwarded to every server; each stops accepting, finishes in-flight requests (up to
   --graceful-timeout) and, for websockets, sends 1001 first. Exit status: the worst child's.
   A process that keeps failing at start-up stops the profile with a non-zero status.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from config.serving.supervisor import supervise
from core.local_secrets import stored_secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# The supervisor is a console program outside Django: its own lines, to stderr.
logger = logging.getLogger("parley.serve")
VENV_BIN = Path(sys.executable).parent

# The ASGI tier: uvicorn with the graceful websocket shutdown (one process per worker).
ASGI_MODULE = "config.serving.asgi_graceful"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parley"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SECRETS_FILE = BASE_DIR / ".local" / "serve-secrets.json"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def production_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the production profile: os.environ, then our defaults for what is
    unset, then `overrides` (the benchmark's)."""
    env = dict(os.environ)
    env.update(overrides or {})
    env["DEBUG"] = "0"
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    for name in ("SECRET_KEY", "JWT_SIGNING_KEY"):
        if not env.get(name):
            env[name] = stored_secret(SECRETS_FILE, name)
    if not env.get("FIELD_ENCRYPTION_KEYS"):
        # A Fernet key (URL-safe base64 of 32 bytes) derived from a stored local secret.
        seed = stored_secret(SECRETS_FILE, "FIELD_ENCRYPTION_KEY_SEED")
        env["FIELD_ENCRYPTION_KEYS"] = base64.urlsafe_b64encode(
            hashlib.sha256(seed.encode()).digest()
        ).decode()
    env.setdefault("SECURE_SSL_REDIRECT", "0")
    env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
    env.setdefault("LOG_LEVEL", "WARNING")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Persistent connections are for the WSGI tier only (wsgi_command sets them): an ASGI
    # server inheriting them would leak a connection per request.
    env.pop("DB_CONN_MAX_AGE", None)
    return env


def ensure_database(database_url: str) -> None:
    """CREATE DATABASE when the URL's database does not exist yet (PostgreSQL only)."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg
    from psycopg import sql

    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = str(info.get("dbname") or "postgres")
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# The key of the PostgreSQL advisory lock `prepare` holds: hosts started together take turns.
PREPARE_LOCK_KEY = 0x7061726C6579  # "parley"


def prepare(env: dict[str, str], *, quiet: bool = False) -> None:
    """Database, migrations, static files, system checks. Several hosts starting at once on one
    PostgreSQL (deploy/cluster.py, deploy/compose.yaml) take turns under an advisory lock:
    the first migrates, the others find nothing left to do (two concurrent `migrate` runs
    would both try to create the same tables)."""
    ensure_database(env["DATABASE_URL"])
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    out = subprocess.DEVNULL if quiet else None
    with _prepare_lock(env["DATABASE_URL"]):
        for command in (
            ["migrate", "--noinput", "-v", "0"],
            ["collectstatic", "--noinput", "-v", "0"],
            ["check", "--fail-level", "ERROR"],
        ):
            subprocess.run(  # noqa: S603 - our own interpreter and manage.py, fixed arguments
                [*manage, *command], env=env, cwd=BASE_DIR, check=True, stdout=out
            )


@contextlib.contextmanager
def _prepare_lock(database_url: str) -> Iterator[None]:
    """Held by this process's own connection until the block ends (PostgreSQL releases it if
    the process dies); nothing to hold on another database (one host only)."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        yield
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PREPARE_LOCK_KEY,))
        yield


@dataclass
class Plan:
    """The server processes of one topology."""

    commands: list[list[str]] = field(default_factory=list)
    http_port: int = 8000
    ws_port: int = 8000
    description: str = ""
    # Signal that stops each command gracefully (nginx: SIGQUIT; the Python servers: SIGTERM).
    stop_signals: dict[int, int] = field(default_factory=dict)


NGINX_CONF = """\
# Generated by config/serving/serve.py (nginx_conf): one port for browsers and API
# clients; /ws/ goes to the ASGI tier, everything else to the WSGI tier.
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    server_tokens off;
    # Parley answers oversized API bodies itself (413 JSON, 64 KiB); keep bodies in memory.
    client_max_body_size 128k;
    client_body_buffer_size 128k;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    proxy_max_temp_file_size 0;
    # Several servers per upstream when hosts share the front (deploy/cluster.py): a host
    # that refuses or does not answer within 2 s is passed over for the next one.
    upstream parley_http {{ {http_servers} keepalive 64; }}
    upstream parley_ws {{ {ws_servers} }}
    proxy_connect_timeout 2s;
    server {{
        listen {host}:{port} backlog=4096;
        # proxy_set_header is not inherited by a location that sets its own, so each location
        # lists all of them. X-Forwarded-For is overwritten, never appended: with
        # RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR Parley reads the address nginx saw, not
        # one a client wrote.
        location /ws/ {{
            proxy_pass http://parley_ws;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
        location / {{
            proxy_pass http://parley_http;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_conf(
    directory: Path, *, host: str, port: int, http_upstreams: list[str], ws_upstreams: list[str]
) -> str:
    """The front's configuration: nginx on host:port, its files in `directory`, REST to the
    WSGI servers `http_upstreams` and /ws/ to the ASGI servers `ws_upstreams` ("addr:port")."""
    return NGINX_CONF.format(
        dir=directory,
        host=host,
        port=port,
        http_servers=" ".join(f"server {upstream};" for upstream in http_upstreams),
        ws_servers=" ".join(f"server {upstream};" for upstream in ws_upstreams),
    )


def nginx_command(*, host: str, port: int, http_port: int, ws_port: int) -> list[str]:
    import shutil

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("--front nginx needs nginx: apt-get install -y nginx-light")
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix=f"parley-nginx-{port}-"))
    directory.chmod(0o755)
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_conf(
            directory,
            host=host,
            port=port,
            http_upstreams=[f"127.0.0.1:{http_port}"],
            ws_upstreams=[f"127.0.0.1:{ws_port}"],
        )
    )
    return [binary, "-c", str(conf), "-p", str(directory), "-g", "daemon off;"]


def wsgi_command(
    server: str,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    graceful_timeout: float,
    app: str = "config.wsgi:application",
    conn_max_age: int = 0,
) -> list[str]:
    # Each request thread keeps its database connection this long (config/settings.py,
    # DB_CONN_MAX_AGE; 0: the pool). Set here, for this command alone, through env(1), which
    # execs the server: the PID (and the signals sent to it) stay the server's.
    prefix = ["/usr/bin/env", f"DB_CONN_MAX_AGE={conn_max_age}"] if conn_max_age else []
    if server == "granian":
        return prefix + [
            str(VENV_BIN / "granian"),
            "--interface",
            "wsgi",
            "--no-ws",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            # One Rust runtime thread per worker: the two cores belong to Python and PostgreSQL.
            "--runtime-threads",
            "1",
            # No --backpressure: with granian's default (backlog / workers) every request a
            # worker has accepted is finished on SIGTERM. A low value leaves the excess in the
            # kernel's listen backlog, and those connections are reset at shutdown (measured:
            # 24 of 32 requests lost with --backpressure 4, 0 of 32 with the default).
            "--workers-kill-timeout",
            str(int(graceful_timeout)),
            "--log-level",
            "warning",
            "--no-access-log",
            app,
        ]
    if server == "gunicorn":
        return prefix + [
            str(VENV_BIN / "gunicorn"),
            app,
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread" if threads > 1 else "sync",
            "--threads",
            str(threads),
            "--graceful-timeout",
            str(int(graceful_timeout)),
            "--keep-alive",
            "5",
            "--log-level",
            "warning",
        ]
    raise ValueError(f"unknown WSGI server {server!r}")


def asgi_commands(
    *, host: str, port: int, workers: int, graceful_timeout: float
) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            ASGI_MODULE,
            "--host",
            host,
            "--port",
            str(port),
            "--reuse-port",
            "--graceful-timeout",
            str(graceful_timeout),
        ]
        for _ in range(workers)
    ]


def worker_commands(count: int) -> list[list[str]]:
    """Webhook delivery workers (integrations' `run_worker`) beside the web tier, on the same
    database: django-tasks claims with SKIP LOCKED on PostgreSQL, so any number share the queue
    and none delivers an attempt twice. SIGTERM lets each finish the attempt in flight."""
    return [[sys.executable, str(BASE_DIR / "manage.py"), "run_worker"] for _ in range(count)]


def plan(args: argparse.Namespace) -> Plan:
    web = _web_plan(args)
    count = getattr(args, "webhook_workers", 1)
    web.commands.extend(worker_commands(count))
    if count:
        web.description += f" + webhook worker x{count}"
    return web


def _web_plan(args: argparse.Namespace) -> Plan:
    workers = args.workers or cpu_count()
    if args.topology == "asgi":
        return Plan(
            commands=asgi_commands(
                host=args.host,
                port=args.port,
                workers=workers,
                graceful_timeout=args.graceful_timeout,
            ),
            http_port=args.port,
            ws_port=args.port,
            description=f"uvicorn ASGI x{workers} on :{args.port} (HTTP + websockets)",
        )
    ws_workers = args.ws_workers or 1
    front = args.front
    if front == "auto":
        import shutil

        front = "nginx" if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else "none"
    if front == "nginx":
        http_port, ws_port = _internal_port(), _internal_port()
        commands = [
            nginx_command(host=args.host, port=args.port, http_port=http_port, ws_port=ws_port),
            wsgi_command(
                args.wsgi_server,
                host="127.0.0.1",
                port=http_port,
                workers=workers,
                threads=args.threads,
                graceful_timeout=args.graceful_timeout,
                app=args.wsgi_app,
                conn_max_age=args.conn_max_age,
            ),
            *asgi_commands(
                host="127.0.0.1",
                port=ws_port,
                workers=ws_workers,
                graceful_timeout=args.graceful_timeout,
            ),
        ]
        return Plan(
            commands=commands,
            http_port=args.port,
            ws_port=args.port,
            description=(
                f"nginx on :{args.port} → {args.wsgi_server} WSGI x{workers} (threads "
                f"{args.threads}) on :{http_port} + uvicorn ASGI x{ws_workers} on :{ws_port} "
                "for /ws/"
            ),
            stop_signals={0: signal.SIGQUIT},
        )
    return Plan(
        commands=[
            wsgi_command(
                args.wsgi_server,
                host=args.host,
                port=args.port,
                workers=workers,
                threads=args.threads,
                graceful_timeout=args.graceful_timeout,
                app=args.wsgi_app,
                conn_max_age=args.conn_max_age,
            ),
            *asgi_commands(
                host=args.host,
                port=args.ws_port,
                workers=ws_workers,
                graceful_timeout=args.graceful_timeout,
            ),
        ],
        http_port=args.port,
        ws_port=args.ws_port,
        description=(
            f"{args.wsgi_server} WSGI x{workers} (threads {args.threads}) on :{args.port} "
            f"(REST/admin/pages) + uvicorn ASGI x{ws_workers} on :{args.ws_port} (websockets)"
        ),
    )


def _internal_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="config.serving", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--topology", choices=["split", "asgi"], default=os.environ.get("SERVE_TOPOLOGY", "split")
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--ws-port", type=int, default=int(os.environ.get("WS_PORT", "8001")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_WORKERS", "0")),
        help="HTTP worker processes (default: one per core)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("WEB_THREADS", "4")),
        help="threads per WSGI worker",
    )
    parser.add_argument(
        "--ws-workers",
        type=int,
        default=int(os.environ.get("WS_WORKERS", "1")),
        help="uvicorn processes for websockets in the split topology",
    )
    parser.add_argument(
        "--front",
        choices=["auto", "none", "nginx"],
        default=os.environ.get("SERVE_FRONT", "auto"),
        help="split topology: nginx on --port routing /ws/ to the ASGI tier "
        "(one origin); auto = nginx when installed, else two ports",
    )
    parser.add_argument(
        "--wsgi-server",
        choices=["granian", "gunicorn"],
        default=os.environ.get("WSGI_SERVER", "granian"),
    )
    parser.add_argument(
        "--wsgi-app",
        default=os.environ.get("WSGI_APP", "config.wsgi:application"),
        help="WSGI callable (to measure a patched build; default the real one)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=int(os.environ.get("WSGI_DB_CONN_MAX_AGE", "600")),
        help="seconds a WSGI request thread keeps its database connection "
        "(0: take one from the pool per request, as the ASGI tier does)",
    )
    parser.add_argument(
        "--webhook-workers",
        type=int,
        default=int(os.environ.get("WEBHOOK_WORKERS", "1")),
        help="webhook delivery worker processes beside the web tier (0: none)",
    )
    parser.add_argument("--graceful-timeout", type=float, default=20.0)
    parser.add_argument(
        "--no-prepare", action="store_true", help="skip createdb/migrate/collectstatic/check"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = production_env()
    if not args.no_prepare:
        prepare(env)
    topology = plan(args)
    logging.basicConfig(level=logging.INFO, format="parley serve: %(message)s")
    logger.info("%s", topology.description)
    return supervise(
        topology.commands,
        env,
        stop_signals=topology.stop_signals,
        cwd=BASE_DIR,
        kill_after=args.graceful_timeout + 5,
    )


if __name__ == "__main__":
    sys.exit(main())
