"""Secrets generated once and kept on disk for local runs only (DEBUG development, a local trial
of the production profile). Never used when the environment provides the secret."""

from __future__ import annotations

import json
import secrets
from pathlib import Path


def stored_secret(path: Path, name: str) -> str:
    """The secret `name` from the JSON file at `path`, created (mode 0600) on first use, so
    restarts and several worker processes agree on it."""
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    if name not in stored:
        stored[name] = secrets.token_urlsafe(48)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    return stored[name]
