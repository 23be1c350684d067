"""streamscribe: producer and consumer SDKs for the real-time speech pipeline on Redis Streams."""

from shared.schemas import Features, SessionConfig, Transcript
from streamscribe.client import Subscriber, read_transcript, wait_for_done
from streamscribe.connection import connect
from streamscribe.producer import Producer, PushProgress

__all__ = [
    "Features",
    "Producer",
    "PushProgress",
    "SessionConfig",
    "Subscriber",
    "Transcript",
    "connect",
    "read_transcript",
    "wait_for_done",
]
