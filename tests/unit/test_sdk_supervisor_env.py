"""A Stack's workers rebuild exactly the supervisor's settings from their environment."""

from __future__ import annotations

import dataclasses

from services.asr.settings import AsrSettings
from services.ingest.settings import IngestSettings
from shared.settings import BusSettings, ServeSettings, Settings


def test_settings_survive_the_trip_through_the_environment() -> None:
    settings = Settings(
        bus=BusSettings(redis_url="redis://10.0.0.5:6380/2", block_ms=250, socket_timeout_s=2.5),
        stages={
            **Settings.from_env({}).stages,  # every installed stage, at its defaults
            "ingest": IngestSettings(max_frame_bytes=4096, vad_threshold=0.35),
            "asr": AsrSettings(model="/models/small.en", device="cpu", beam_size=3),
        },
        serve=ServeSettings(log_json=False, log_level="debug"),
        pipeline=("ingest", "asr", "semantic"),
        worker_name="parent",
    )
    env = settings.to_env()
    assert env["STREAMSCRIBE_ASR_MODEL"] == "/models/small.en"
    assert env["STREAMSCRIBE_REDIS_URL"] == "redis://10.0.0.5:6380/2"
    assert env["STREAMSCRIBE_LOG_JSON"] == "0"
    assert "STREAMSCRIBE_WORKER_NAME" not in env  # each worker names itself
    rebuilt = Settings.from_env(env)
    assert dataclasses.replace(rebuilt, worker_name="parent") == settings


def test_overrides_reach_a_stage_settings_object() -> None:
    settings = Settings().with_overrides(asr__beam_size=2, bus__block_ms=100)
    assert settings.stage("asr", AsrSettings).beam_size == 2
    assert settings.stage("ingest", IngestSettings) == IngestSettings()
    assert settings.bus.block_ms == 100
