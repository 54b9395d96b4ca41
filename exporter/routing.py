"""Route templates for the ``http_route`` label. A raw path is never a label.

Starlette and FastAPI apps (routers, mounts, sub-apps) are read through their route tables; other ASGI
frameworks give a list of path patterns or a resolver callable. The route tables are compiled into one
regular expression, so a request costs one dictionary look-up (recent paths) or one regex match.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .labels import OVERFLOW, UNMATCHED
from .types import Scope

Resolver = Callable[[Scope], "str | None"]
Entry = tuple[str, str, "frozenset[str] | None"]  # (template, regex source, methods or None for any)

log = logging.getLogger("exporter")

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")
_CACHE_SIZE = 2048
_DEFAULT_CONVERTORS = {"str": "[^/]+", "path": ".*", "int": "[0-9]+", "float": r"[0-9]+(\.[0-9]+)?"}


def _convertor_regex(name: str) -> str:
    try:
        from starlette.convertors import CONVERTOR_TYPES
    except ImportError:  # starlette is a dependency, but other frameworks' patterns need no convertors
        return _DEFAULT_CONVERTORS.get(name, "[^/]+")
    conv = CONVERTOR_TYPES.get(name)
    return conv.regex if conv is not None else "[^/]+"


def template_regex(template: str) -> str:
    """``/items/{id:int}`` -> a regex source without named groups (so templates can be combined)."""
    out: list[str] = []
    pos = 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?:{_convertor_regex(m.group(2) or 'str')})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


def route_path(scope: Scope) -> str:
    """The path the app routes on: ``path`` without ``root_path`` (as Starlette computes it)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        if path == root:
            return ""
        if path[len(root)] == "/":
            return path[len(root) :]
    return path


class _Table:
    """Route templates compiled into one alternation; ``lastgroup`` names the template that matched."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = list(entries)
        if self.entries:
            alternatives = "|".join(f"(?P<r{i}>{src})" for i, (_, src, _) in enumerate(self.entries))
            self.regex: re.Pattern[str] | None = re.compile(f"^(?:{alternatives})$")
        else:
            self.regex = None
        self._singles: list[re.Pattern[str]] | None = None

    def match(self, method: str, path: str) -> str | None:
        if self.regex is None:
            return None
        m = self.regex.match(path)
        if m is None:
            return None
        index = int(m.lastgroup[1:])  # type: ignore[index]
        template, _, methods = self.entries[index]
        if methods is None or method in methods:
            return template
        # The first path match is for another method: Starlette then prefers a later full match, else
        # answers 405 for the first. Rare, so the slow scan is fine here.
        if self._singles is None:
            self._singles = [re.compile(f"^(?:{src})$") for _, src, _ in self.entries]
        for (tpl, _, meths), rx in zip(self.entries[index + 1 :], self._singles[index + 1 :], strict=True):
            if (meths is None or method in meths) and rx.match(path):
                return tpl
        return template


def _starlette_entries(routes: Iterable[Any], prefix: str, depth: int = 0) -> list[Entry]:
    entries: list[Entry] = []
    if depth > 16:
        return entries
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):  # FastAPI's lazily included routers: their candidates carry full paths
            try:
                entries.extend(_starlette_entries(candidates(), prefix, depth + 1))
            except Exception:
                pass
            continue
        path = getattr(route, "path", None)
        original = getattr(route, "original_route", None)
        if original is not None:  # one route of such a router
            route = getattr(route, "starlette_route", None) or original
            path = path or getattr(route, "path", None)
        if not isinstance(path, str):
            continue  # Host routes and custom routes without a path template
        sub = getattr(route, "routes", None)
        if sub is None and hasattr(route, "methods"):
            methods = route.methods
            if methods is None and "WebSocket" in type(route).__name__:
                continue
            template = prefix + path
            entries.append((template, template_regex(template), frozenset(methods) if methods else None))
        elif sub is not None:  # a Mount
            if not sub:  # a mounted app behind middleware: Mount.routes can't see through it
                sub = find_routes(getattr(route, "app", None)) or []
            mount = prefix + path.rstrip("/")
            inner = _starlette_entries(sub, mount, depth + 1)
            if inner:
                entries.extend(inner)
            else:  # a mounted app that is not a router (static files, another framework)
                template = mount + "/{path:path}"
                entries.append((template, template_regex(mount) + "/.*", None))
    return entries


def find_routes(app: Any) -> list[Any] | None:
    """Walk ``.app`` links (middleware stacks) down to an object with a ``routes`` list."""
    obj = app
    for _ in range(32):
        if obj is None:
            return None
        routes = getattr(obj, "routes", None)
        if isinstance(routes, list):
            return routes
        obj = getattr(obj, "app", None)
    return None


class RouteResolver:
    """Gives each request its route template, or ``__unmatched__``."""

    def __init__(
        self,
        app: Any,
        patterns: Sequence[str] = (),
        resolver: Resolver | None = None,
        cap: Callable[[str], str] = str,
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.cap = cap  # applied once per template found, so cached values are already capped
        self.patterns = _Table([(p, template_regex(p), None) for p in patterns]) if patterns else None
        self._routes: list[Any] | None = None
        self._routes_len = -1
        self._table: _Table | None = None
        self._cache: dict[str, str] = {}

    def __call__(self, scope: Scope, path: str | None = None) -> str:
        """``path``, when the caller has it, is ``route_path(scope)``."""
        if self.resolver is not None:
            return self.cap(self._from_resolver(scope))
        method: str = scope["method"]
        if path is None:
            path = route_path(scope)
        key = method + " " + path
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        table = self.patterns or self._starlette_table(scope)
        template = self.cap((table.match(method, path) if table is not None else None) or UNMATCHED)
        if template == OVERFLOW:
            return template  # not cached: the cap counts every request it folds, as for every other label
        cache = self._cache
        if len(cache) >= _CACHE_SIZE:
            cache.clear()  # bounded; paths with ids would otherwise grow it without end
        cache[key] = template
        return template

    def _from_resolver(self, scope: Scope) -> str:
        try:
            template = self.resolver(scope)  # type: ignore[misc]
        except Exception:
            return UNMATCHED
        return template if isinstance(template, str) and template else UNMATCHED

    def _starlette_table(self, scope: Scope) -> _Table | None:
        routes = self._routes
        if routes is None:
            # The wrapped app's own table first; scope["app"] (set by Starlette before its middleware stack)
            # for a stack whose layers don't expose ``.app``. When the middleware wraps an app mounted
            # inside another, scope["app"] is the outer app, whose table is the wrong one.
            routes = find_routes(self.app) or find_routes(scope.get("app"))
            if routes is None:
                return None
            self._routes = routes
        if self._table is None or len(routes) != self._routes_len:
            self._routes_len = len(routes)
            self._cache.clear()
            try:
                self._table = _Table(_starlette_entries(routes, ""))
            except Exception:  # an odd route object: no templates rather than an error on every request
                log.exception("llm-exporter: reading the app's routes failed; routes are recorded as __unmatched__")
                self._table = _Table([])
        return self._table
