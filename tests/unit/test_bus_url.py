"""Which URLs select the Redis Cluster client."""

from __future__ import annotations

import pytest

from shared.bus import split_cluster_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://10.0.0.5:6379", ("redis://10.0.0.5:6379", True)),
        ("rediss+cluster://:pw@node-0:6380", ("rediss://:pw@node-0:6380", True)),
        ("redis://127.0.0.1:6379/0", ("redis://127.0.0.1:6379/0", False)),
        ("rediss://host:6380/2", ("rediss://host:6380/2", False)),
        ("unix:///run/redis.sock", ("unix:///run/redis.sock", False)),
    ],
)
def test_split_cluster_url(url: str, expected: tuple[str, bool]) -> None:
    assert split_cluster_url(url) == expected
