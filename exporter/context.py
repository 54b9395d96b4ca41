"""Which recorder an observation goes to: the request's (set by the middleware), else the default one;
and what the inputs must know of each other so that one LLM call is recorded once.

The bottom of the input side: the ``llm`` API, the middleware, outbound capture and the GenAI span
processor find their recorder here without depending on how recorders are built. :mod:`exporter.wiring`,
the composition root, installs how the default one is made when it is imported (``import exporter``
always imports it).

The rules of who records an LLM call (each input looks here, none calls another):

1. Inside an ``llm.call()`` block, the block is the record: outbound capture records nothing of the
   calls made in it (their rate-limit headers excepted).
2. Otherwise outbound capture records each provider answer the app's ``httpx`` clients receive.
3. A request during which outbound capture saw an LLM answer (rule 1 or 2) is not counted again from
   the response it returns (a proxy forwarding a provider's answer records it once).
4. A GenAI span under which outbound capture saw the answer is not counted again by the span processor.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

from .recorder import Recorder


class Handling:
    """The request being handled, as the calls its handler makes see it: its ``recorder``, its ``route``
    (capped; None outside any request), and how many LLM answers outbound capture saw while handling it.
    Copies of the context (tasks, Starlette's thread pool for sync handlers) share this one mutable object,
    so a count made there is seen here."""

    __slots__ = ("recorder", "route", "outbound_calls")

    def __init__(self, recorder: Recorder | None, route: str | None) -> None:
        self.recorder = recorder
        self.route = route
        self.outbound_calls = 0


# Set by the middleware for each request, reset when it ends: one context variable for the recorder and the
# route (public so that the middleware calls its set/reset without a wrapper in between).
handling_var: ContextVar[Handling | None] = ContextVar("llm_exporter_handling", default=None)
# True inside an ``llm.call()`` block (rule 1 above).
block_var: ContextVar[bool] = ContextVar("llm_exporter_llm_block", default=False)
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
    handling = handling_var.get()
    rec = handling.recorder if handling is not None else None
    return rec if rec is not None else default_recorder()


def request_recorder() -> Recorder | None:
    """The recorder the middleware set for the request being handled, if any."""
    handling = handling_var.get()
    return handling.recorder if handling is not None else None


def use_recorder(rec: Recorder) -> Token[Handling | None]:
    """Make ``rec`` current in this context (the route stays the current one); returns the token for
    :func:`reset_recorder`."""
    handling = handling_var.get()
    return handling_var.set(Handling(rec, handling.route if handling is not None else None))


def reset_recorder(token: Token[Handling | None]) -> None:
    handling_var.reset(token)


def current_route() -> str | None:
    """The (capped) route of the request being handled; None outside any request."""
    handling = handling_var.get()
    return handling.route if handling is not None else None
