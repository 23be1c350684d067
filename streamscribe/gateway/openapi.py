"""The OpenAPI 3.1 description the gateway serves at /openapi.json (written by hand)."""

from __future__ import annotations

from typing import Any

_SID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH_ERRORS = {
    "401": {"description": "no bearer token"},
    "403": {"description": "token refused or not allowed to reach this session"},
}
_SESSION_ERRORS = {**_AUTH_ERRORS, "404": {"description": "no such session"}}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def openapi_document(version: str) -> dict[str, Any]:
    """The document; `version` is the package version."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamscribe gateway",
            "version": version,
            "description": "WebSocket /stream, SSE and REST over the streamscribe bus. "
            "The WebSocket protocol is described in docs/PROTOCOL.md (section Gateway).",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "schemas": {
                "SessionConfig": {
                    "type": "object",
                    "properties": {
                        "sample_rate": {"type": "integer", "default": 16000},
                        "encoding": {"enum": ["pcm_s16le", "pcm_f32le", "opus"]},
                        "channels": {"type": "integer", "default": 1},
                        "channels_as_speakers": {"type": "boolean"},
                        "language": {"type": ["string", "null"]},
                        "features": {"type": "object"},
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
            },
        },
        "security": [{"bearer": []}, {"query": []}],
        "paths": {
            "/stream": {
                "get": _op(
                    "WebSocket: START_SESSION/RESUME, AUDIO_CHUNK or binary audio, END_SESSION, "
                    "PING; events as PARTIAL, FINALIZED, ... SESSION_ENDED (docs/PROTOCOL.md)",
                    {"101": {"description": "switching protocols"}, **_AUTH_ERRORS},
                )
            },
            "/stream/sessions": {
                "post": _op(
                    "Create a session; returns session_id and the WebSocket URL",
                    {
                        "201": {"description": "created: session_id, ws_url, events_url"},
                        "409": {"description": "the session id exists"},
                        "422": {"description": "invalid config"},
                        "429": {"description": "the token has max_sessions_per_token open"},
                        **_AUTH_ERRORS,
                    },
                    requestBody={
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "session_id": {"type": "string"},
                                        "config": {"$ref": "#/components/schemas/SessionConfig"},
                                    },
                                }
                            }
                        }
                    },
                )
            },
            "/stream/sessions/{session_id}/status": {
                "get": _op(
                    "State (created, running, done), last seq, finished stages, done stats",
                    {"200": {"description": "status"}, **_SESSION_ERRORS},
                    parameters=[_SID],
                )
            },
            "/stream/sessions/{session_id}": {
                "delete": _op(
                    "Force close: the producer `stop` is sent; the session ends with done",
                    {
                        "202": {"description": "stopping"},
                        "200": {"description": "already done"},
                        **_SESSION_ERRORS,
                    },
                    parameters=[_SID],
                )
            },
            "/stream/sessions/{session_id}/transcript": {
                "get": _op(
                    "Transcript v2 of everything published so far",
                    {"200": {"description": "Transcript v2 JSON"}, **_SESSION_ERRORS},
                    parameters=[_SID],
                )
            },
            "/stream/sessions/{session_id}/events": {
                "get": _op(
                    "Server-Sent Events, id = seq; Last-Event-ID (or ?last_seq=) resumes",
                    {
                        "200": {"description": "text/event-stream"},
                        "204": {"description": "everything through done was delivered"},
                        **_SESSION_ERRORS,
                    },
                    parameters=[_SID],
                )
            },
            "/stream/config": {
                "get": _op(
                    "Default session config and the gateway's limits",
                    {"200": {"description": "config"}, **_AUTH_ERRORS},
                )
            },
            "/livez": {"get": _op("Liveness", {"200": {"description": "ok"}}, security=[])},
            "/readyz": {
                "get": _op(
                    "Readiness (Redis answers)",
                    {"200": {"description": "ok"}, "503": {"description": "Redis unreachable"}},
                    security=[],
                )
            },
            "/metrics": {
                "get": _op("Prometheus metrics", {"200": {"description": "text"}}, security=[])
            },
        },
    }
