"""``llm-exporter demo``: a simulated LLM chat service, wrapped by the middleware, with its own traffic."""

from .run import DemoRun, build, demo_config, load_demo_config, run_demo
from .service import MODELS, ChatService

__all__ = ["MODELS", "ChatService", "DemoRun", "build", "demo_config", "load_demo_config", "run_demo"]
