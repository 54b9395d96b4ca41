"""Which recorder an observation goes to: the request's (set by the middleware), else the default one.

The bottom of the input side: the ``llm`` API, the middleware and the GenAI span processor find their
recorder here without depending on how recorders are built. :mod:`exporter.wiring`, the composition
root, installs how the default one is made when it is imported (``import exporter`` always imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

from .recorder import Recorder

# Public so that the middleware, on every request, calls its get/set/reset without a wrapper in between.
request_var: ContextVar[Recorder | None] = ContextVar("llm_exporter_recorder", default=None)
_default: list[Callable[[], Recorder]] = []  # one entry, set by install_default()


def install_default(make: Callable[[], Recorder]) -> None:
    """Set how :func:`default_recorder` finds (or builds) the default registry's recorder."""
    _default[:] = [make]


def default_recorder() -> Recorder:
    """The default registry's recorder, built on first use with the sinks its config enables."""
    assert _default, "exporter.wiring installs the default recorder when exporter is imported"
    return _default[0]()


def current_recorder() -> Recorder:
    """The recorder of the request being handled, else the default registry's."""
    rec = request_var.get()
    return rec if rec is not None else default_recorder()


def request_recorder() -> Recorder | None:
    """The recorder the middleware set for the request being handled, if any."""
    return request_var.get()


def use_recorder(rec: Recorder) -> Token[Recorder | None]:
    """Make ``rec`` current in this context; returns the token for :func:`reset_recorder`."""
    return request_var.set(rec)


def reset_recorder(token: Token[Recorder | None]) -> None:
    request_var.reset(token)
