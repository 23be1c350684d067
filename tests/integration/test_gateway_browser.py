"""The live-caption page in a real headless Chromium over a real stack: its microphone is a
held-out WAV, its finals land in the DOM with the push transcript's WER, and a gateway
SIGKILLed mid-session is reconnected to and resumed by the page alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from shared.schemas import Error as ErrorEvent
from streamscribe.supervisor import Stack
from tests.support.gateway import TOKEN, GatewayProcess
from tests.support.pipeline import (
    FIXTURES,
    allowed_gap,
    collect,
    reference_text,
    transcript_text,
    wer,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "BROWSER TESTS SKIPPED: Debian's chromium and chromium-driver are not installed and "
        "could not be (make test installs them with apt-get when run as root)",
        allow_module_level=True,
    )

NAME = "conv_short"
# Seconds of audio the page sends before it stops: one pass of the file (Chromium loops
# the fake capture file).
SECONDS = sf.info(str(FIXTURES / f"{NAME}.flac")).duration
# The uninterrupted run's captions, for the resume test to compare with.
_UNINTERRUPTED: dict[str, str] = {}


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture as the 16-bit WAV Chromium's fake capture device reads."""
    audio, rate = sf.read(FIXTURES / f"{NAME}.flac", dtype="float32")
    path = tmp_path_factory.mktemp("mic") / f"{NAME}.wav"
    sf.write(path, np.asarray(audio), rate, subtype="PCM_16")
    return path


@pytest.fixture
def browser(fake_microphone: Path, tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, gateway: GatewayProcess) -> None:
    driver.get(f"{gateway.url}/?token={TOKEN}&autostart=mic&seconds={SECONDS:.3f}")


def _wait(driver: Any, script: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.2)


def _dom_finals(driver: Any) -> str:
    """The finals' text as the page shows it (DOM order by start time)."""
    return str(driver.execute_script("return window.streamscribe.captions.finalText()"))


def _keep_screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)), "screenshot written"
    artifacts = os.environ.get("STREAMSCRIBE_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    return path


def test_page_captions_the_microphone(
    browser: Any, gateway: GatewayProcess, pushed_text: str, tmp_path: Path
) -> None:
    _open(browser, gateway)
    _wait(browser, "return document.getElementById('connection').dataset.state === 'connected'", 20)
    # A partial is shown (in place) before the first final.
    _wait(browser, "return document.querySelector('.seg.partial, .seg.final') !== null", 30)
    _wait(browser, "return document.body.dataset.ended === 'true'", SECONDS + 60)
    text = _dom_finals(browser)
    dom_text = " ".join(
        el.text.strip() for el in browser.find_elements("css selector", ".seg.final .text")
    )
    assert sorted(dom_text.split()) == sorted(text.split()), "finalText reads the DOM"
    screenshot = _keep_screenshot(browser, tmp_path, "browser_captions")
    assert screenshot.stat().st_size > 10_000
    ref = reference_text(NAME)
    assert text, "finals on the page"
    assert wer(ref, text) <= wer(ref, pushed_text) + allowed_gap(ref), (text, pushed_text)
    speakers = browser.execute_script(
        "return [...document.querySelectorAll('.turn .speaker')].map(e => e.textContent)"
    )
    assert any(speakers), "turns carry their speaker"
    assert browser.find_elements("css selector", ".seg.final .audio"), "[audio: …] renderings"
    _UNINTERRUPTED["text"] = text


def test_page_reconnects_and_resumes_after_the_gateway_is_killed(
    browser: Any, gateway: GatewayProcess, stack: Stack, tmp_path: Path
) -> None:
    if "text" not in _UNINTERRUPTED:
        pytest.skip("needs the uninterrupted run of test_page_captions_the_microphone")
    _open(browser, gateway)
    _wait(browser, "return document.querySelectorAll('.seg.final').length >= 1", 40)
    gateway.kill()
    _wait(
        browser, "return document.getElementById('connection').dataset.state === 'reconnecting'", 10
    )
    time.sleep(1.0)  # audio keeps coming while no gateway listens
    gateway.start()  # the same port: the page finds it by itself
    _wait(browser, "return document.body.dataset.ended === 'true'", SECONDS + 60)
    assert browser.execute_script("return window.streamscribe.link.resumes") >= 1
    assert browser.execute_script("return window.streamscribe.link.frames.size") == 0, (
        "every frame acknowledged"
    )
    _keep_screenshot(browser, tmp_path, "browser_resumed")
    shown = _dom_finals(browser)
    # Exactly the session's transcript: nothing lost or shown twice across the reconnect,
    # and every frame in Redis once (no gap reported by ingest).
    sid = browser.execute_script("return window.streamscribe.link.sessionId")
    events = asyncio.run(collect(stack.url, sid, timeout_s=30))
    assert shown == transcript_text(events)
    gaps = [e for e in events if isinstance(e, ErrorEvent) and e.payload.code == "seq_gap"]
    assert not gaps, gaps
    # Two live captures of a looping fake microphone start a few ms apart (Chromium), so
    # the words are compared with the uninterrupted run's, to the same WER bound as push.
    ref = reference_text(NAME)
    assert wer(ref, shown) <= wer(ref, _UNINTERRUPTED["text"]) + allowed_gap(ref), shown


def _stream_file(driver: Any, gateway: GatewayProcess, wav: Path) -> None:
    """File mode: the page decodes the file itself and streams it at 2x real time."""
    driver.get(f"{gateway.url}/?token={TOKEN}&speed=2")
    driver.find_element("id", "file").send_keys(str(wav))


def test_file_mode_captions_after_a_gateway_kill_equal_an_uninterrupted_run(
    browser: Any, gateway: GatewayProcess, fake_microphone: Path
) -> None:
    """A decoded file is the same audio every time (a live capture is not), so here the
    resumed page's captions must equal the uninterrupted run's word for word."""
    _stream_file(browser, gateway, fake_microphone)
    _wait(browser, "return document.body.dataset.ended === 'true'", SECONDS + 60)
    uninterrupted = _dom_finals(browser)
    assert uninterrupted, "finals on the page"

    _stream_file(browser, gateway, fake_microphone)
    _wait(browser, "return document.querySelectorAll('.seg.final').length >= 1", 40)
    gateway.kill()
    _wait(
        browser, "return document.getElementById('connection').dataset.state === 'reconnecting'", 10
    )
    time.sleep(1.0)  # the file keeps streaming into the page's unacknowledged frames
    gateway.start()
    _wait(browser, "return document.body.dataset.ended === 'true'", SECONDS + 60)
    assert browser.execute_script("return window.streamscribe.link.resumes") >= 1
    assert browser.execute_script("return window.streamscribe.link.frames.size") == 0
    assert _dom_finals(browser) == uninterrupted
