"""Which failures of a session run the worker loop treats as a Redis outage."""

from __future__ import annotations

import pytest
from redis.connection import parse_url

from shared.worker import raised_in_redis_client


def test_an_error_raised_inside_the_redis_client_is_an_outage_symptom() -> None:
    with pytest.raises(ValueError) as inside:
        parse_url("nope://host")  # raises in redis.connection
    assert raised_in_redis_client(inside.value)


def test_an_error_raised_in_stage_code_is_the_stage_failing() -> None:
    with pytest.raises(AttributeError) as outside:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018 - the error is the point
    assert not raised_in_redis_client(outside.value)
    assert not raised_in_redis_client(RuntimeError("never raised"))
