"""`streamscribe up` starts the gateway too, behind a token it prints (none configured)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)


def test_up_starts_a_gateway_behind_a_printed_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCRIBE_")}
    env["STREAMSCRIBE_PIPELINE"] = "ingest"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamscribe.cli", "up", "--stages", "ingest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        for line in proc.stderr:
            if line.startswith("gateway: "):
                break
        found = re.match(r"gateway: (http://[^ ]+)/stream \(token: ([^)]+)\)", line)
        assert found, line
        base, token = found.groups()
        assert httpx.get(f"{base}/stream/config").status_code == 401
        response = httpx.get(f"{base}/stream/config", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/livez")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
