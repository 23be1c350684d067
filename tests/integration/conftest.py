"""Fixtures shared by the gateway's integration modules: one stack, one gateway process.

Package-scoped, so the stack (every pipeline stage, the real model) starts once for the
/stream, Deepgram and browser tests together. A module that needs its own stack defines
a `stack` fixture of its own, which takes precedence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from streamscribe.supervisor import Stack
from tests.support.gateway import GatewayProcess
from tests.support.pipeline import collect, push, running_stack, transcript_text

# The gateway tests push conv_short at four times real time where timing is not the point.
SPEED = 4.0


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack") / "workers.log") as running:
        yield running


@pytest.fixture(scope="package")
def gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(stack.url, tmp_path_factory.mktemp("gw") / "gateway.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="package")
def pushed_text(stack: Stack) -> str:
    """conv_short through Producer.push_file (what `streamscribe push` runs)."""

    async def run() -> str:
        sid = await push(stack.url, "conv_short", speed=SPEED)
        return transcript_text(await collect(stack.url, sid))

    return asyncio.run(run())
