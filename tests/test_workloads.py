"""The workloads' data and pure parts, without Django: mixes, settings, the lab client, the probe's JSON.

The workloads run in their own environments; these tests read their Django-free modules
directly (settings.py is plain Python until Django loads it) so the lab's tables and the
workloads' never drift.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.errors import SpecError
from lab.spec import CLIENT_COOKIE, CSRF_TOKEN, ENDPOINT_PARAMS, ENDPOINTS, MIDDLEWARES, SESSION_KEY, Mix, load_mix

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"
STARTPROJECT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


@pytest.fixture
def workloads_path() -> Iterator[None]:
    sys.path.insert(0, str(WORKLOADS))
    try:
        yield
    finally:
        sys.path.remove(str(WORKLOADS))
        for name in [m for m in sys.modules if m == "shop" or m.startswith(("shop.", "labsite"))]:
            del sys.modules[name]


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for key in ("LAB_MIDDLEWARE", "LAB_DATABASE_URL", "LAB_DB_POOL", "LAB_DB_POOL_SIZE", "LAB_CACHE_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(WORKLOADS / "labsite" / "settings.py"))


def test_lab_client_constants_match_the_workloads(workloads_path: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_SESSION_COOKIE", raising=False)
    from shop import identity  # type: ignore[import-not-found]

    assert (identity.SESSION_KEY, identity.CSRF_TOKEN, identity.COOKIE) == (SESSION_KEY, CSRF_TOKEN, CLIENT_COOKIE)
    # Django's CSRF secret: 32 characters of [a-zA-Z0-9]; a session key needs 8 or more.
    assert len(CSRF_TOKEN) == 32 and CSRF_TOKEN.isalnum()
    assert CLIENT_COOKIE == f"sessionid={SESSION_KEY}; csrftoken={CSRF_TOKEN}"


def test_every_middleware_stack_loads_and_django_default_is_startprojects(monkeypatch: pytest.MonkeyPatch) -> None:
    stacks = {name: settings(monkeypatch, LAB_MIDDLEWARE=name)["MIDDLEWARE"] for name in MIDDLEWARES}
    assert stacks["django-default"] == STARTPROJECT_MIDDLEWARE
    assert stacks["default"] == STARTPROJECT_MIDDLEWARE[:1] + STARTPROJECT_MIDDLEWARE[2:3]
    assert stacks["sync-audit"] == [*stacks["default"], "shop.middleware.SyncAuditMiddleware"]
    assert set(settings(monkeypatch)["MIDDLEWARE_STACKS"]) == set(MIDDLEWARES)
    # One database for every stack: the contrib apps are always installed.
    apps = settings(monkeypatch)["INSTALLED_APPS"]
    assert {"django.contrib.auth", "django.contrib.sessions", "django.contrib.contenttypes"} <= set(apps)
    with pytest.raises(RuntimeError, match="LAB_MIDDLEWARE='startproject'; accepted: default, sync-audit"):
        settings(monkeypatch, LAB_MIDDLEWARE="startproject")


def test_db_pool_on_postgres_only(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgres://lab:pw@127.0.0.1:5433/lab"
    plain = settings(monkeypatch, LAB_DATABASE_URL=url)["DATABASES"]["default"]
    assert plain["CONN_MAX_AGE"] is None and "pool" not in plain.get("OPTIONS", {})
    pooled = settings(monkeypatch, LAB_DATABASE_URL=url, LAB_DB_POOL="1", LAB_DB_POOL_SIZE="8")["DATABASES"]["default"]
    # Django refuses a pool with persistent connections.
    assert pooled["CONN_MAX_AGE"] == 0
    assert pooled["OPTIONS"]["pool"] == {"min_size": 4, "max_size": 8}
    assert pooled["PORT"] == "5433"
    sqlite = settings(monkeypatch, LAB_DB_POOL="1")["DATABASES"]["default"]
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3" and "pool" not in sqlite["OPTIONS"]


def test_break_even_axes_reach_500_ms_and_k_16() -> None:
    sweep = load_mix("io-sweep")
    assert sweep.sweep_param == "latency" and max(sweep.sweep_values) >= 500
    fanout = load_mix("io-fanout-k")
    assert [p.label for p in fanout.points()] == [f"io-fanout-k@k={k}" for k in (1, 2, 4, 8, 16)]
    assert {p.nominal_wait_ms for p in fanout.points()} == {50}, "fan-out waits one latency whatever k"
    assert all(dict(p.params)["mode"] == "fanout" for p in fanout.points())


def test_stream_and_long_poll_mixes() -> None:
    assert {"stream", "long-poll"} <= set(ENDPOINTS) <= set(ENDPOINT_PARAMS)
    (stream,) = load_mix("stream").points()
    assert stream.query == "events=5&interval=100" and stream.nominal_wait_ms == 500
    (poll,) = load_mix("long-poll").points()
    assert poll.query == "hold=1000" and poll.nominal_wait_ms == 1000 and not poll.needs_upstream


def test_orm_crud_is_a_post_a_real_client_sends() -> None:
    (point,) = load_mix("orm-crud").points()
    assert (point.method, point.body, point.query) == ("POST", "quantity=2", "")
    headers = dict(point.headers)
    assert headers == {"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": CSRF_TOKEN}
    (get,) = load_mix("billing").points()
    assert (get.method, get.body, get.headers) == ("GET", "", ())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('method = "PUT"', "'mix.method' is 'PUT'; accepted: GET, POST"),
        ('body = "quantity=2"', "'mix.body' needs method = \"POST\""),
        ('method = "POST"\nheaders = { Cookie = "a=b" }', "must not set Cookie"),
        ('headers = { "X-A" = 1 }', "'mix.headers' must be a table of header names to one-line strings"),
    ],
)
def test_mix_request_keys_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(f'[mix]\nname = "m"\ndescription = "d"\nendpoint = "crud"\n{extra}\n')
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Mix.from_toml(path)


class FakeCounts:
    crossings = "sync_to_async=8;async_to_sync=0"

    def __init__(self, sql: int) -> None:
        self.sql = sql

    def as_dict(self) -> dict[str, int]:
        return {
            "sync_to_async": 8,
            "async_to_sync": 0,
            "sql_statements": self.sql,
            "upstream_calls": 1,
            "db_connections_opened": 1,
            "db_pool_checkouts": 0,
        }


def test_probe_json_keeps_the_old_keys_and_adds_cold_and_work_counts(workloads_path: None) -> None:
    from labsite import inprocess  # type: ignore[import-not-found]

    cold = inprocess.Rendered(status=200, body=b"{}", headers={}, counts=FakeCounts(sql=3))
    steady = inprocess.Rendered(
        status=200, body=b'{"a":1}', headers={"x-lab-write-lock-wait-us": "17"}, counts=FakeCounts(sql=1)
    )
    out = inprocess.summary(cold, steady)
    assert out["status"] == 200 and out["length"] == 7 and out["body_head"] == '{"a":1}'
    assert out["sha256"] == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    assert out["crossings"] == out["crossings_cold"] == "sync_to_async=8;async_to_sync=0"
    assert (out["sql_statements"], out["sql_statements_cold"]) == (1, 3)
    assert out["upstream_calls"] == 1 and out["db_connections_opened"] == 1 and out["db_pool_checkouts_cold"] == 0
    assert out["status_cold"] == 200 and out["write_lock_wait_us"] == 17
    assert "sync_to_async" not in out, "crossings stay in the one text key the lab parses"
    uncounted = inprocess.summary(cold, inprocess.Rendered(status=200, body=b"", headers={}, counts=None))
    assert uncounted["crossings"] == "" and "sql_statements" not in uncounted


def test_probe_headers_and_request_shape(workloads_path: None) -> None:
    from labsite import inprocess

    assert inprocess.parse_header("X-CSRFToken:  abc ") == ("X-CSRFToken", "abc")
    with pytest.raises(ValueError, match="is not 'Name: value'"):
        inprocess.parse_header("no colon")
    shape = inprocess.RequestShape(method="POST", body=b"quantity=2", headers=(("X-CSRFToken", CSRF_TOKEN),))
    assert shape.all_headers == (("Cookie", CLIENT_COOKIE), ("X-CSRFToken", CSRF_TOKEN))
