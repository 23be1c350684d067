"""Bearer tokens: static ones from the settings and short-lived HMAC-SHA256 signed ones.

A signed token is `sst1.<claims>.<signature>`, both parts unpadded base64url: the claims
are JSON `{"sub": subject, "exp": unix seconds, "sessions": "*" | [ids], "iat": ...}` and
the signature is HMAC-SHA256 over `sst1.<claims>` with the gateway's token secret.
`sessions` names the sessions the token may reach: a list grants exactly those (to view a
session someone else created, or to create one under a chosen id), `*` grants every
session the token's subject created through the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamscribe.gateway.settings import GatewaySettings

TOKEN_PREFIX = "sst1"
# Offered by a browser as `Sec-WebSocket-Protocol: streamscribe.v1, bearer.<token>`:
# browsers cannot set an Authorization header on a WebSocket.
SUBPROTOCOL = "streamscribe.v1"
SUBPROTOCOL_BEARER = "bearer."
ALL_SESSIONS = "*"


class AuthError(Exception):
    """A request without credentials (status 401) or with ones refused (403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for and which sessions it may reach."""

    subject: str
    sessions: frozenset[str] | None  # None: `*`, the subject's own sessions
    expires_at: float | None = None  # None: a static token

    def names(self, session_id: str) -> bool:
        """Whether the token lists `session_id` explicitly."""
        return self.sessions is not None and session_id in self.sessions


def mint_token(
    secret: str,
    *,
    subject: str,
    ttl_s: float,
    sessions: Sequence[str] | str = ALL_SESSIONS,
    now: float | None = None,
) -> str:
    """A signed token for `subject`, valid `ttl_s` seconds, reaching `sessions`."""
    if not secret:
        raise ValueError("no token secret: set STREAMSCRIBE_GATEWAY_TOKEN_SECRET")
    if not subject:
        raise ValueError("a token needs a subject")
    if ttl_s <= 0:
        raise ValueError(f"ttl must be positive, got {ttl_s}")
    issued = time.time() if now is None else now
    scope: str | list[str] = ALL_SESSIONS if sessions == ALL_SESSIONS else list(sessions)
    claims = {
        "sub": subject,
        "iat": int(issued),
        "exp": round(issued + ttl_s, 3),
        "sessions": scope,
    }
    body = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{TOKEN_PREFIX}.{body}"
    return f"{signed}.{_b64encode(_sign(secret, signed))}"


def verify_token(token: str, settings: GatewaySettings, *, now: float | None = None) -> Principal:
    """The Principal of `token`, or AuthError(403) for an unknown, forged or expired one."""
    for static in settings.tokens:
        if hmac.compare_digest(token.encode(), static.encode()):
            return Principal(subject=static_subject(static), sessions=None)
    if not token.startswith(TOKEN_PREFIX + ".") or not settings.token_secret:
        raise AuthError(403, "invalid_token", "token not recognised")
    signed, _, signature = token.rpartition(".")
    try:
        given = _b64decode(signature)
        claims = json.loads(_b64decode(signed.split(".", 1)[1]))
    except (ValueError, IndexError):
        raise AuthError(403, "invalid_token", "token is malformed") from None
    if not hmac.compare_digest(given, _sign(settings.token_secret, signed)):
        raise AuthError(403, "invalid_token", "token signature does not match")
    if not isinstance(claims, dict):
        raise AuthError(403, "invalid_token", "token claims are not an object")
    expires = claims.get("exp")
    subject = claims.get("sub")
    scope = claims.get("sessions", ALL_SESSIONS)
    if not isinstance(expires, int | float) or not isinstance(subject, str) or not subject:
        raise AuthError(403, "invalid_token", "token lacks exp or sub")
    if (time.time() if now is None else now) >= expires:
        raise AuthError(403, "token_expired", "token has expired")
    if scope == ALL_SESSIONS:
        sessions = None
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        sessions = frozenset(scope)
    else:
        raise AuthError(403, "invalid_token", "token sessions must be '*' or a list of ids")
    return Principal(subject=f"sub:{subject}", sessions=sessions, expires_at=float(expires))


def static_subject(token: str) -> str:
    """A static token's subject: a digest, so the token itself is never stored in Redis."""
    return "static:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def token_from_request(
    headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Sequence[str] = ()
) -> str | None:
    """The bearer token of a request: Authorization header (`Bearer` or, as Deepgram's
    clients send it, `Token`), `?token=`, or subprotocol."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    if query.get("token"):
        return query["token"]
    for protocol in subprotocols:
        if protocol.startswith(SUBPROTOCOL_BEARER) and len(protocol) > len(SUBPROTOCOL_BEARER):
            return protocol[len(SUBPROTOCOL_BEARER) :]
    return None


def authenticate(token: str | None, settings: GatewaySettings) -> Principal:
    """AuthError(401) without a token, (403) for a refused one; else the Principal."""
    if token is None:
        raise AuthError(401, "unauthenticated", "a bearer token is required")
    return verify_token(token, settings)


def _sign(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
