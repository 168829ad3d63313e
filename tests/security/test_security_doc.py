"""docs/security.md maps every OWASP ASVS 5.0 level-2 requirement of V6, V7, V8, V9 and V11 to
a test or a reason. This keeps the map honest: every test it names exists, every requirement has
a row with a proof, and the crypto inventory names every key Parley configures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"

# The level-1 and level-2 requirements of ASVS 5.0.0 in these chapters (level 3 is out of scope).
LEVEL_2_REQUIREMENTS = {
    "V6": "6.1.1 6.1.2 6.1.3 6.2.1 6.2.2 6.2.3 6.2.4 6.2.5 6.2.6 6.2.7 6.2.8 6.2.9 6.2.10 6.2.11 "
    "6.2.12 6.3.1 6.3.2 6.3.3 6.3.4 6.4.1 6.4.2 6.4.3 6.4.4 6.5.1 6.5.2 6.5.3 6.5.4 6.5.5 "
    "6.6.1 6.6.2 6.6.3 6.8.1 6.8.2 6.8.3 6.8.4",
    "V7": "7.1.1 7.1.2 7.1.3 7.2.1 7.2.2 7.2.3 7.2.4 7.3.1 7.3.2 7.4.1 7.4.2 7.4.3 7.4.4 7.4.5 "
    "7.5.1 7.5.2 7.6.1 7.6.2",
    "V8": "8.1.1 8.1.2 8.2.1 8.2.2 8.2.3 8.3.1 8.4.1",
    "V9": "9.1.1 9.1.2 9.1.3 9.2.1 9.2.2 9.2.3 9.2.4",
    "V11": "11.1.1 11.1.2 11.2.1 11.2.2 11.2.3 11.3.1 11.3.2 11.3.3 11.4.1 11.4.2 11.4.3 11.4.4 "
    "11.5.1 11.6.1",
}
ROW = re.compile(r"^\| (\d+\.\d+\.\d+) \| ([^|]+) \| (.+) \|$", re.MULTILINE)
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for requirement, paraphrase, proof in ROW.findall(DOC.read_text()):
        assert requirement not in rows, f"{requirement} appears twice"
        rows[requirement] = (paraphrase.strip(), proof.strip())
    return rows


def test_every_level_2_requirement_has_a_row_with_a_proof() -> None:
    rows = _rows()
    expected = {req for chapter in LEVEL_2_REQUIREMENTS.values() for req in chapter.split()}
    assert set(rows) == expected
    for requirement, (paraphrase, proof) in rows.items():
        assert len(paraphrase) > 10, requirement
        # A proof is a named test, or a stated reason it does not apply.
        assert TEST_REFERENCE.search(proof) or proof.startswith("Not applicable"), requirement


def _referenced_tests() -> list[tuple[str, str]]:
    return sorted(set(TEST_REFERENCE.findall(DOC.read_text())))


def test_the_map_names_tests() -> None:
    assert len(_referenced_tests()) > 60


@pytest.mark.parametrize(("path", "name"), _referenced_tests())
def test_every_named_test_exists(path: str, name: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"{path} does not exist"
    assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE), (
        f"{path} has no test named {name}"
    )


def test_the_inventory_names_every_key_setting() -> None:
    text = DOC.read_text()
    inventory = text[text.index("## Key and crypto inventory") : text.index("## Passwords")]
    for setting in ("SECRET_KEY", "JWT_SIGNING_KEYS", "FIELD_ENCRYPTION_KEYS", "PASSWORD_HASHERS"):
        assert hasattr(settings, setting)
        assert f"`{setting}`" in inventory, setting
