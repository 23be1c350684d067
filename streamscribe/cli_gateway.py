"""CLI commands of the gateway: `gateway` (serve WebSocket/REST/SSE) and `token` (mint one)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping

from shared.logging import configure_logging
from shared.settings import Settings
from streamscribe.cli_common import EXIT_USAGE, CliError
from streamscribe.embedded import free_port
from streamscribe.gateway.auth import ALL_SESSIONS, mint_token
from streamscribe.gateway.settings import GATEWAY_ENV_PREFIX, GatewaySettings


def add_gateway_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", metavar="H", help=f"address to bind (${GATEWAY_ENV_PREFIX}HOST)")
    p.add_argument("--port", type=int, metavar="P", help=f"port (${GATEWAY_ENV_PREFIX}PORT, 8000)")


def add_token_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subject", default="cli", help="who the token speaks for (%(default)s)")
    p.add_argument(
        "--ttl",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds it stays valid (%(default)s)",
    )
    p.add_argument(
        "--sessions",
        default=ALL_SESSIONS,
        metavar="IDS",
        help="comma-separated session ids it may reach, or * for the sessions its subject "
        "creates (%(default)s)",
    )


def _gateway_settings(args: argparse.Namespace) -> GatewaySettings:
    try:
        gateway = GatewaySettings.from_env()
    except ValueError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return dataclasses.replace(gateway, **overrides)


def cmd_gateway(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    gateway = _gateway_settings(args)
    if not gateway.auth_configured:
        raise CliError(
            EXIT_USAGE,
            f"no tokens: set {GATEWAY_ENV_PREFIX}TOKENS (comma-separated) or "
            f"{GATEWAY_ENV_PREFIX}TOKEN_SECRET (for `streamscribe token`)",
        )
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    # Imported here: uvicorn and starlette load only for the command that serves.
    from streamscribe.gateway.server import serve

    serve(gateway, settings, extra_port=settings.serve.health_port)
    return 0


@dataclasses.dataclass(frozen=True)
class StackGateway:
    """How `up`/`demo` run their gateway: the variables it gets, its URL, a dev token."""

    env: dict[str, str]
    url: str
    token: str | None  # generated for this run when none was configured

    def describe(self) -> str:
        auth = f" (token: {self.token})" if self.token else ""
        return f"gateway: {self.url}/stream{auth}"


def stack_gateway(env: Mapping[str, str] | None = None) -> StackGateway:
    """The gateway `up`/`demo` start: STREAMSCRIBE_GATEWAY_* as set, else port 8000 when
    free (another free port when not), and a random token for this run when no tokens
    are configured, so the local gateway is never open to anyone on the machine."""
    env = os.environ if env is None else env
    extra: dict[str, str] = {}
    port_name, tokens_name = f"{GATEWAY_ENV_PREFIX}PORT", f"{GATEWAY_ENV_PREFIX}TOKENS"
    port = int(env[port_name]) if env.get(port_name) else _free_or_other(8000)
    extra[port_name] = str(port)
    token = None
    if not env.get(tokens_name) and not env.get(f"{GATEWAY_ENV_PREFIX}TOKEN_SECRET"):
        token = secrets.token_urlsafe(24)
        extra[tokens_name] = token
    host = env.get(f"{GATEWAY_ENV_PREFIX}HOST") or GatewaySettings().host
    return StackGateway(env=extra, url=f"http://{host}:{port}", token=token)


def _free_or_other(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def cmd_token(args: argparse.Namespace, _settings: Settings, _url: str | None) -> int:
    gateway = _gateway_settings(args)
    sessions: str | list[str] = args.sessions
    if args.sessions != ALL_SESSIONS:
        sessions = [s.strip() for s in args.sessions.split(",") if s.strip()]
    try:
        token = mint_token(
            gateway.token_secret, subject=args.subject, ttl_s=args.ttl, sessions=sessions
        )
    except ValueError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    print(token)
    return 0
