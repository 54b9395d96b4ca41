"""``llm-exporter demo``: a simulated LLM chat service, wrapped by the middleware, with its own traffic."""

from .run import DEFAULT_RPS, DemoRun, build, demo_config, drift_timeline, load_demo_config, run_demo, shift_time
from .service import MODELS, ChatService

__all__ = [
    "DEFAULT_RPS",
    "MODELS",
    "ChatService",
    "DemoRun",
    "build",
    "demo_config",
    "drift_timeline",
    "load_demo_config",
    "run_demo",
    "shift_time",
]
