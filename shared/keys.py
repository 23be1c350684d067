"""Every Redis key name streamscribe uses; the `{session_id}` hash-tag rule lives here only."""

from __future__ import annotations

import hashlib
import re

PREFIX = "ss"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class InvalidSessionId(ValueError):
    """A session id that cannot be used in a key (braces would break the hash tag)."""


def check_session_id(session_id: str) -> str:
    """Return `session_id` if it is safe inside a hash tag, else raise InvalidSessionId."""
    if not _SESSION_ID.match(session_id):
        raise InvalidSessionId(
            f"session id {session_id!r} must be 1-128 characters of letters, digits, '_.:-'"
        )
    return session_id


def _tagged(session_id: str, name: str) -> str:
    # The braces make Redis Cluster hash only the session id, so every key of a
    # session lands in one slot and one Lua script may touch them together.
    return f"{PREFIX}:{{{check_session_id(session_id)}}}:{name}"


def registry() -> str:
    """The session registry stream; each stage has a consumer group on it."""
    return f"{PREFIX}:sessions"


def inbox(session_id: str) -> str:
    """Producer messages (start, media, stop) of one session."""
    return _tagged(session_id, "in")


def audio(session_id: str) -> str:
    """Normalized 16 kHz audio, VAD marks and the end mark, written by ingest."""
    return _tagged(session_id, "audio")


def events(session_id: str) -> str:
    """The session's event stream: the single source of truth."""
    return _tagged(session_id, "events")


def heads(session_id: str) -> str:
    """Hash of entity id -> newest published revision (and whether it is final)."""
    return _tagged(session_id, "heads")


def checkpoints(session_id: str) -> str:
    """Hash of stage name -> that stage's checkpoint (JSON)."""
    return _tagged(session_id, "ckpt")


def finished(session_id: str) -> str:
    """Set of stages that have finished the session; the last one publishes `done`."""
    return _tagged(session_id, "finished")


def gateway_owner(session_id: str) -> str:
    """The subject (token owner) that created the session through the gateway.

    Written with a TTL (the gateway refreshes it on every attach), like every gateway key.
    """
    return _tagged(session_id, "owner")


def gateway_subject_sessions(subject: str) -> str:
    """Sorted set of session ids one token subject created through the gateway (by time).

    The subject is hashed: it comes from a token and may hold any character.
    """
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"{PREFIX}:gw:subject:{digest}"


def registration(session_id: str) -> str:
    """The registry entry id that is the session's registration (the first one claimed);
    a second registry entry for the same session is a duplicate every stage skips."""
    return _tagged(session_id, "reg")


def session_keys(session_id: str) -> list[str]:
    """All keys of one session, for expiry after `done`."""
    return [
        inbox(session_id),
        audio(session_id),
        events(session_id),
        heads(session_id),
        checkpoints(session_id),
        finished(session_id),
        registration(session_id),
    ]
