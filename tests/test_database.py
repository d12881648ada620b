from __future__ import annotations

import pytest

from lab.database import parse_database, redact
from lab.errors import SpecError


def test_sqlite_and_local_postgres() -> None:
    assert parse_database("sqlite").kind == "sqlite"
    local = parse_database("postgres-local")
    assert (local.kind, local.managed, local.label) == ("postgres", True, "postgres-local")


def test_loopback_postgres_url() -> None:
    choice = parse_database("postgres://lab:secret@127.0.0.1:5432/bench")
    assert (choice.kind, choice.managed) == ("postgres", False)
    assert choice.label == "postgres postgres://lab:***@127.0.0.1:5432/bench"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "mysql://u@127.0.0.1/db",
            "database 'mysql://u@127.0.0.1/db' is not supported; accepted: sqlite, postgres-local",
        ),
        ("postgres://u@10.1.2.3:5432/db", "database host '10.1.2.3' is not a loopback address"),
        ("postgres://u@127.0.0.1:5432/", "names no database"),
        ("postgres://u@127.0.0.1:99999/db", "has an invalid port"),
        ("sqlite3", "database 'sqlite3' is not supported"),
    ],
)
def test_bad_database_values(value: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_database(value)


def test_passwords_never_reach_messages() -> None:
    with pytest.raises(SpecError) as info:
        parse_database("postgres://u:hunter2@10.0.0.1/db")
    assert "hunter2" not in str(info.value)
    assert redact("postgres://u:hunter2@h/db") == "postgres://u:***@h/db"
