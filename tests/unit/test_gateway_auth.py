"""Gateway tokens without Redis: minting, verification, expiry, tampering, where a token is
read from; and the outbox's coalescing and bound."""

from __future__ import annotations

import base64
import json

import pytest

from streamscribe.gateway.auth import (
    AuthError,
    authenticate,
    mint_token,
    static_subject,
    token_from_request,
    verify_token,
)
from streamscribe.gateway.messages import Outgoing
from streamscribe.gateway.outbox import Outbox
from streamscribe.gateway.settings import GatewaySettings

SETTINGS = GatewaySettings(tokens=("static-1",), token_secret="s3cret")


def test_minted_token_verifies_with_its_claims() -> None:
    token = mint_token("s3cret", subject="alice", ttl_s=60, sessions=["a", "b"], now=1000)
    principal = verify_token(token, SETTINGS, now=1059)
    assert principal.subject == "sub:alice"
    assert principal.sessions == frozenset({"a", "b"})
    assert principal.names("a") and not principal.names("c")
    assert principal.expires_at == 1060
    everything = verify_token(mint_token("s3cret", subject="bob", ttl_s=60), SETTINGS)
    assert everything.sessions is None


def test_token_expires_at_its_exp() -> None:
    token = mint_token("s3cret", subject="alice", ttl_s=60, now=1000)
    with pytest.raises(AuthError) as refused:
        verify_token(token, SETTINGS, now=1060)
    assert (refused.value.status, refused.value.code) == (403, "token_expired")


def test_tampered_or_foreign_tokens_are_refused() -> None:
    token = mint_token("s3cret", subject="alice", ttl_s=60, sessions=["a"])
    prefix, claims, signature = token.split(".")
    widened = json.loads(base64.urlsafe_b64decode(claims + "=="))
    widened["sessions"] = "*"
    forged_claims = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    for bad in (
        f"{prefix}.{forged_claims}.{signature}",
        mint_token("other", subject="alice", ttl_s=60),
        token[:-2],
        "sst1.garbage",
        "unknown-static",
    ):
        with pytest.raises(AuthError) as refused:
            verify_token(bad, SETTINGS)
        assert refused.value.status == 403
    no_secret = GatewaySettings(tokens=("static-1",))
    with pytest.raises(AuthError):
        verify_token(token, no_secret)


def test_static_tokens_and_missing_token() -> None:
    principal = verify_token("static-1", SETTINGS)
    assert principal.subject == static_subject("static-1") and principal.sessions is None
    assert "static-1" not in principal.subject  # the token itself never reaches Redis
    with pytest.raises(AuthError) as refused:
        authenticate(None, SETTINGS)
    assert refused.value.status == 401


def test_mint_refuses_what_cannot_work() -> None:
    for kwargs in ({"ttl_s": 0}, {"subject": ""}):
        with pytest.raises(ValueError):
            mint_token("s3cret", **{"subject": "a", "ttl_s": 60, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mint_token("", subject="a", ttl_s=60)


def test_token_sources_header_query_subprotocol() -> None:
    assert token_from_request({"authorization": "Bearer abc"}, {}) == "abc"
    assert token_from_request({"authorization": "bearer  abc "}, {}) == "abc"
    assert token_from_request({}, {"token": "q"}) == "q"
    assert token_from_request({}, {}, ["streamscribe.v1", "bearer.xyz"]) == "xyz"
    assert token_from_request({"authorization": "Basic abc"}, {}, ["bearer."]) is None


def test_settings_from_env() -> None:
    env = {
        "STREAMSCRIBE_GATEWAY_TOKENS": "a, b,,",
        "STREAMSCRIBE_GATEWAY_PORT": "9000",
        "STREAMSCRIBE_GATEWAY_MAX_FRAMES_PER_SECOND": "50",
    }
    settings = GatewaySettings.from_env(env)
    assert settings.tokens == ("a", "b") and settings.port == 9000
    assert settings.max_frames_per_second == 50.0
    assert GatewaySettings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError):
        GatewaySettings.from_env({"STREAMSCRIBE_GATEWAY_PORT": "x"})


def _message(seq: int, entity: str, partial: bool) -> Outgoing:
    return Outgoing(text=str(seq), type="PARTIAL" if partial else "FINALIZED", seq=seq,
                    entity_id=entity, coalescable=partial)  # fmt: skip


async def test_outbox_coalesces_partials_and_fails_when_finals_overflow() -> None:
    outbox = Outbox(limit=3)
    assert outbox.put(_message(1, "a", True))
    assert outbox.put(_message(2, "b", False))
    assert outbox.put(_message(3, "a", True))  # replaces seq 1, goes after seq 2
    assert outbox.put(_message(4, "c", True))
    assert [(await outbox.get()).seq for _ in range(3)] == [2, 3, 4]
    assert outbox.coalesced == 1
    for seq in range(5, 8):
        assert outbox.put(_message(seq, f"f{seq}", False))
    assert not outbox.put(_message(8, "f8", False))  # a fourth final: too slow
    assert outbox.failed.is_set() and len(outbox) == 1
    last = await outbox.get()
    assert last.type == "ERROR" and last.close_code == 1013 and "slow_consumer" in last.text
