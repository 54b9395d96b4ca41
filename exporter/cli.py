"""The ``llm-exporter`` command. A thin argparse layer: each command calls a typed function; only
``main`` turns errors into exit codes (2 for user mistakes, with a message and no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import yaml

from .config import Config, ConfigError, effective_config

APP_ENV = "_LLM_EXPORTER_RUN_TARGET"  # outside the LLM_EXPORTER_ prefix, which is config


class UsageError(Exception):
    """A mistake in how the command was called; printed without a traceback."""


def check(config_path: str | None, price: str | None = None, provider: str | None = None) -> str:
    """Validate config and pricing; return the report ``llm-exporter check`` prints (and ``price``'s price)."""
    config = Config.load(config_path)
    out = ["# effective configuration", yaml.safe_dump(effective_config(config), sort_keys=False).rstrip()]
    from .pricing import PricingTable, describe_price, format_table

    table = PricingTable.from_config(config.pricing)
    out += ["", format_table(table)]
    if price is not None:
        out += ["", describe_price(table, price, provider)]
    return "\n".join(out)


def import_app(target: str) -> Any:
    """The object ``MODULE:APP`` names (``APP`` may be dotted). Any reason it can't be had is a
    :class:`UsageError` of one line naming the module and the cause, never the import's traceback."""
    module_name, _, attrs = target.partition(":")
    if not module_name or not attrs:
        raise UsageError(f"expected MODULE:APP, got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"cannot import {module_name}: there is no module {missing!r} "
                f"(run from the directory that holds it, or set PYTHONPATH)"
            ) from None
        if missing.split(".")[0] == module_name.split(".")[0]:
            raise UsageError(f"cannot import {module_name}: it imports {missing!r}, which does not exist") from None
        raise UsageError(f"cannot import {module_name}: it imports {missing!r}, which is not installed") from None
    except SyntaxError as exc:
        raise UsageError(f"cannot import {module_name}: {exc.msg} ({exc.filename}, line {exc.lineno})") from None
    except Exception as exc:  # whatever the module raises while it is imported is the user's to fix
        raise UsageError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise UsageError(f"{module_name} has no attribute {attrs!r}") from None
    if not callable(obj):
        raise UsageError(f"{target} is a {type(obj).__name__}, not an ASGI app")
    return obj


def wrapped_app() -> Any:
    """uvicorn factory: the ``MODULE:APP`` that ``run`` was given, wrapped by the middleware (once per worker)."""
    from .middleware import PrometheusMiddleware

    app = import_app(os.environ[APP_ENV])
    # With metrics_port set the middleware serves nothing on the app port; the port itself is served by
    # run() (multiprocess: one exposition for all workers, from the parent).
    return PrometheusMiddleware(app, config=Config.load())


def run(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    metrics_port: int | None = None,
    config_path: str | None = None,
) -> None:
    """Serve ``MODULE:APP`` with uvicorn, wrapped by the middleware, without changing its code."""
    import uvicorn

    if ":" not in target:
        raise UsageError(f"expected MODULE:APP, got {target!r}")
    if config_path is not None:
        os.environ["LLM_EXPORTER_CONFIG"] = os.path.abspath(config_path)
    if metrics_port is not None:
        os.environ["LLM_EXPORTER_METRICS_PORT"] = str(metrics_port)
    config = Config.load()  # fail here, once, with a clear message, rather than in every worker
    if config.metrics_port is not None and config.metrics_port == port:
        raise UsageError(f"--metrics-port must differ from --port (both {port})")
    from .prometheus.exposition import metrics_app
    from .prometheus.multiprocess import MULTIPROC_ENV, multiprocess_dir, wipe_multiprocess_dir
    from .prometheus.server import start_metrics_server

    shared = multiprocess_dir()
    if shared is not None:
        if not os.path.isdir(shared):
            raise UsageError(f"{MULTIPROC_ENV}={shared}: not a directory")
        # Before the app is imported (with one worker this process records too): counts of an earlier run
        # would otherwise be added to this one's.
        wipe_multiprocess_dir(shared)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import_app(target)  # here, once: a worker that fails to import it would print a traceback
    os.environ[APP_ENV] = target
    own_dir = None
    if shared is None and workers > 1:
        own_dir = tempfile.mkdtemp(prefix="llm-exporter-prom-")
        os.environ[MULTIPROC_ENV] = own_dir
    try:
        if config.metrics_port is not None:
            # Served from this process: with one worker the middleware finds the port taken by this same
            # exposition and reuses it; with several, this is the one place that sees every worker's files.
            try:
                start_metrics_server(config.metrics_port, config.metrics_host or host, metrics_app(auth=config.auth))
            except OSError as exc:
                raise UsageError(str(exc)) from None
        uvicorn.run("exporter.cli:wrapped_app", factory=True, host=host, port=port, workers=workers, log_level="info")
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="llm-exporter",
        description="Prometheus metrics, MLflow summaries and drift detection for LLM features behind any ASGI app.",
        epilog="Start with `llm-exporter demo`; `llm-exporter COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .demo.run import DEFAULT_RPS, SHIFT_AFTER

    p = sub.add_parser("demo", help="run a simulated LLM chat service with its own traffic (start here)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds to run; the traffic shifts half way (default: until Ctrl-C, shifting after {SHIFT_AFTER:g} s)",
    )
    p.add_argument(
        "--rps",
        type=float,
        default=DEFAULT_RPS,
        help="requests per second of the built-in traffic (default: %(default)g)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not mirror summaries to MLflow")
    p.add_argument("--config", default=None, help="YAML config file")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="serve MODULE:APP with uvicorn, wrapped by the middleware")
    p.add_argument("target", metavar="MODULE:APP", help="the ASGI app to wrap, e.g. myservice.main:app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (>1: multiprocess metrics)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port instead")
    p.add_argument("--config", default=None, help="YAML config file")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("collector", help="run the standalone POST /track collector")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--config", default=None, help="YAML config file")
    p.set_defaults(func=_cmd_collector)

    p = sub.add_parser(
        "templates",
        help="write the Grafana dashboard, Prometheus rules (with promtool tests), Alertmanager config, "
        "prometheus.yml and Grafana provisioning to DIR",
    )
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="where to write them (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist with other content")
    p.set_defaults(func=_cmd_templates)

    p = sub.add_parser("check", help="validate config and pricing, print the effective config")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("--price", default=None, metavar="MODEL", help="also print what MODEL is priced as")
    p.add_argument("--provider", default=None, help="the provider of --price's MODEL (openai, gcp.gemini...)")
    p.set_defaults(func=_cmd_check)

    from .drift.cli import add_parser as add_baseline_parser

    add_baseline_parser(sub)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import load_demo_config, run_demo

    return run_demo(
        host=args.host,
        port=args.port,
        duration=args.duration,
        rps=args.rps,
        config=load_demo_config(args.config, mlflow=not args.no_mlflow),
        mlflow=not args.no_mlflow,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    for option, value in (("--port", args.port), ("--metrics-port", args.metrics_port)):
        if value is not None and not 0 < value < 65536:
            raise UsageError(f"{option} must be a port between 1 and 65535, got {value}")
    run(
        args.target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        metrics_port=args.metrics_port,
        config_path=args.config,
    )
    return 0


def _cmd_collector(args: argparse.Namespace) -> int:
    from .checks import PORT, Wrong
    from .collector import serve

    if args.port is not None:
        try:
            PORT(args.port)
        except Wrong as exc:
            raise UsageError(f"--port: {exc.message}, got {args.port}") from None
    serve(Config.load(args.config), args.host, args.port)
    return 0


def _cmd_templates(args: argparse.Namespace) -> int:
    from . import templates

    try:
        written = templates.write(args.dir, force=args.force)
    except templates.TemplatesError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write to {exc.filename or args.dir}: {exc.strerror or exc}") from None
    where = os.path.join(args.dir, "")
    print(f"wrote {len(written)} files under {where}:")
    print("\n".join(f"  {path}" for path in written))
    print(f"check them with: promtool check config {os.path.join(args.dir, 'prometheus.yml')}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    print(check(args.config, args.price, args.provider))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, UsageError) as exc:
        print(f"llm-exporter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
