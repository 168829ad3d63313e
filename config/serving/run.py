"""`make run`: the development profile's two processes under the supervisor of `make serve`.

    .venv/bin/python -m config.serving.run [--host 127.0.0.1] [--port 8000]

uvicorn serves HTTP and websockets (ASGI) on --host:--port, `manage.py run_worker` delivers
webhooks beside it, both with the environment as it is (the embedded defaults unless
DATABASE_URL / REDIS_URL say otherwise; migrations and demo accounts are the Makefile's steps
before this). A process that exits is started again with backoff (config/serving/supervisor.py);
Ctrl-C or SIGTERM stops both.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from config.serving.serve import BASE_DIR, VENV_BIN
from config.serving.supervisor import supervise


def commands(*, host: str, port: int) -> list[list[str]]:
    uvicorn = VENV_BIN / "uvicorn"
    return [
        [
            str(uvicorn) if uvicorn.exists() else sys.executable,
            *([] if uvicorn.exists() else ["-m", "uvicorn"]),
            "config.asgi:application",
            "--host",
            host,
            "--port",
            str(port),
            "--lifespan",
            "off",
            # Oversized websocket frames are refused before they are buffered whole.
            "--ws-max-size",
            "65536",
        ],
        [sys.executable, str(BASE_DIR / "manage.py"), "run_worker"],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="config.serving.run", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="parley run: %(message)s")
    return supervise(commands(host=args.host, port=args.port), dict(os.environ), cwd=BASE_DIR)


if __name__ == "__main__":
    sys.exit(main())
