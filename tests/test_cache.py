from __future__ import annotations

import pytest

from lab.cache import parse_cache
from lab.errors import SpecError


def test_cache_choices() -> None:
    assert parse_cache("locmem").label == "locmem"
    assert parse_cache("redis-local").managed
    assert parse_cache("redis://127.0.0.1:6379/1").label == "redis redis://127.0.0.1:6379/1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("memcached://127.0.0.1:11211", "cache 'memcached://127.0.0.1:11211' is not supported; accepted: locmem"),
        ("redis://10.0.0.5:6379/0", "cache host '10.0.0.5' is not a loopback address"),
    ],
)
def test_bad_cache_values(value: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_cache(value)
