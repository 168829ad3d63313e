"""Helpers for .ci/attack: bandit with every accepted finding explained, and small utilities.

    python -m bench.attack bandit            # fails on any finding not explained below
    python -m bench.attack free-port
    python -m bench.attack token FILE ROLE   # the access token of ROLE from attack-users JSON

Each accepted bandit finding names the file, the test id and a fragment of the flagged line,
so a new finding of the same kind elsewhere (or in a changed line) still fails. The better home
for these reasons is a `# nosec BXXX - reason` on the line itself; until the owners of those
files add them, they live here.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
TARGETS = ["core", "accounts", "messaging", "escalations", "integrations", "config"]

# (file, test id, fragment of the flagged code, why it is not a vulnerability)
ACCEPTED: list[tuple[str, str, str, str]] = [
    (
        "core/outages.py",
        "B112",
        "still down: check again after the pause",
        "the outage watcher: a readiness check that still fails means the dependency is still "
        "down, so it checks again after its backoff (the outage was logged once already)",
    ),
    (
        "core/schemas.py",
        "B102",
        "exec(source, namespace)",
        "a schema reader compiled once per response schema, as dataclasses builds its methods: the "
        "source is made only of the schema's own field names (checked to be identifiers) and "
        "fixed text; no request data",
    ),
    (
        "config/serving/supervisor.py",
        "B404",
        "import subprocess",
        "the supervisor of make serve / make run starts its own server and worker processes; no "
        "shell, commands fixed by config/serving",
    ),
    (
        "config/serving/supervisor.py",
        "B603",
        "subprocess.Popen(child.command",
        "our own interpreter, uvicorn/granian and manage.py with arguments built by config/serving "
        "from settings, never from a request; no shell",
    ),
    (
        "integrations/worker.py",
        "B606",
        "os.execv(sys.executable, [sys.executable, *sys.argv])",
        "the webhook worker replaces itself with the very command it was started with (its own "
        "interpreter and argv) once the broker is back after an outage; no shell, nothing from "
        "a request",
    ),
    (
        "messaging/agent/training/corpus.py",
        "B311",
        "random.Random(SEED + 1)",
        "the training corpus is generated from a fixed seed so that it is reproducible; nothing "
        "secret depends on it",
    ),
    (
        "messaging/agent/training/corpus.py",
        "B311",
        "random.Random(SEED)",
        "the training corpus is generated from a fixed seed so that it is reproducible; nothing "
        "secret depends on it",
    ),
    (
        "messaging/idempotency.py",
        "B608",
        "LEFT JOIN {_quoted(table(IdempotencyRecord))}",
        "the key's lock-and-read: table and column names come from the model's _meta "
        "(constants); the user id and key are bound parameters (%s)",
    ),
    (
        "messaging/idempotency.py",
        "B608",
        "INSERT INTO {_quoted(table(IdempotencyRecord))}",
        "the record's INSERT: table and column names come from the model's _meta (constants); "
        "every value is a bound parameter (%s)",
    ),
    (
        "accounts/schemas.py",
        "B101",
        "== set(ALL_SCOPES)",
        "import-time consistency check between two constant lists, not a runtime guard",
    ),
    (
        "accounts/services.py",
        "B105",
        '"bearer"',
        "the OAuth2 token_type value 'bearer', not a password",
    ),
    (
        "accounts/tokens.py",
        "B105",
        'PASSWORD_FINGERPRINT_CLAIM = "pwf"',
        "the name of a JWT claim, not a password",
    ),
    (
        "accounts/tokens.py",
        "B106",
        'token="(not stored)"',
        "placeholder stored instead of the refresh token's text, on purpose",
    ),
    (
        "config/settings.py",
        "B105",
        '"TOKEN_TYPE_CLAIM": "token_type"',
        "simplejwt setting naming a claim, not a password",
    ),
    (
        "accounts/sockets.py",
        "B311",
        "random.uniform",
        "jitter for the re-validation timer; nothing secret depends on it",
    ),
    (
        "config/serving/serve.py",
        "B404",
        "import subprocess",
        "the production supervisor starts its own server processes; no shell, fixed commands",
    ),
    (
        "config/serving/serve.py",
        "B603",
        "subprocess.run(",
        "our own interpreter and manage.py with fixed arguments (migrate, collectstatic, check)",
    ),
    (
        "config/serving/serve.py",
        "B603",
        "subprocess.Popen(command",
        "commands built by plan() from the operator's own options, never from request data",
    ),
    (
        "config/serving/serve.py",
        "B310",
        "urllib.request.urlopen(url",
        "start-up readiness probe of our own server on loopback (http:// built from our port)",
    ),
    (
        "integrations/delivery.py",
        "B105",
        'claim_token = ""',
        "clearing a delivery's worker-claim token (a random lease id), not a password",
    ),
    (
        "integrations/services.py",
        "B105",
        'SECRET_PREFIX = "whsec_"',
        "the Standard Webhooks secret format prefix, not a secret",
    ),
    (
        "accounts/fastauth.py",
        "B608",
        "",
        "table and column names come from the models' _meta (constants), the user id, jti and "
        "family are bound parameters (%s); no request data is formatted into the SQL",
    ),
    (
        "messaging/fastpath.py",
        "B608",
        "",
        "table and column names come from the models' _meta (constants), every value is a bound "
        "parameter (%s); no request data is ever formatted into the SQL",
    ),
    (
        "messaging/search.py",
        "B608",
        "",
        "full-text search: table and column names come from the models' _meta (constants) and "
        "the FTS table's fixed name; the user's words, ids, limits and cursors are bound "
        "parameters (%s), and on SQLite the words reach MATCH only as quoted strings",
    ),
    (
        "integrations/delivery.py",
        "B608",
        "INSERT INTO",
        "the outbox INSERT: table, column and type names come from the models' _meta "
        "(constants), the number of rows from the change's own event count; every value is a "
        "bound parameter (%s)",
    ),
    (
        "integrations/delivery.py",
        "B608",
        "EXISTS (SELECT 1 FROM",
        "the outbox's condition: the endpoint table and its is_active column from the model's "
        "_meta (constants); no value at all",
    ),
]


def bandit() -> int:
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "bandit"),
            "-r",
            *TARGETS,
            "-x",
            "*/migrations/*",
            "-f",
            "json",
            "-q",
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        print(completed.stdout, completed.stderr, file=sys.stderr)
        return 2
    if report.get("errors"):
        print(f"bandit errors: {report['errors']}", file=sys.stderr)
        return 2
    unexplained, explained = [], []
    for issue in report["results"]:
        path = issue["filename"].removeprefix("./")
        reason = next(
            (
                why
                for file, test_id, fragment, why in ACCEPTED
                if file == path and test_id == issue["test_id"] and fragment in issue["code"]
            ),
            None,
        )
        line = f"{path}:{issue['line_number']} {issue['test_id']} {issue['issue_text']}"
        (explained if reason else unexplained).append(
            f"{line}\n      accepted: {reason}" if reason else line
        )
    for line in explained:
        print(f"  accepted  {line}")
    for line in unexplained:
        print(f"  FINDING   {line}")
    scanned = report["metrics"]["_totals"]["loc"]
    print(
        f"bandit: {scanned} lines, {len(explained)} accepted finding(s) with reasons, "
        f"{len(unexplained)} unexplained"
    )
    return 1 if unexplained else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "bandit":
        return bandit()
    if command == "free-port":
        print(free_port())
        return 0
    if command == "token":
        print(json.loads(Path(argv[1]).read_text())[argv[2]]["token"])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
