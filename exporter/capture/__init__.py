"""Zero-code capture: LLM usage read from provider payloads (response bodies, stream events, SDK objects)."""

from .response import JsonCapture, ResponseCapture, SseCapture, capture_body, may_carry_usage, start_capture
from .usage import Reading, read

__all__ = [
    "JsonCapture",
    "Reading",
    "ResponseCapture",
    "SseCapture",
    "capture_body",
    "may_carry_usage",
    "read",
    "start_capture",
]
