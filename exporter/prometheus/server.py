"""The exposition on a port of its own (``metrics_port``), served by uvicorn from a daemon thread."""

from __future__ import annotations

import socket
import threading
from typing import Any

from ..types import ASGIApp
from .exposition import metrics_app

_servers: dict[int, tuple[threading.Thread, Any]] = {}  # port -> (thread, uvicorn.Server)
_servers_lock = threading.Lock()


def start_metrics_server(port: int, host: str = "127.0.0.1", app: ASGIApp | None = None) -> threading.Thread:
    """Serve the exposition on its own port from a daemon thread (once per port per process).

    The socket is bound here, in the caller's thread, so a port in use raises ``OSError`` at once
    instead of leaving a thread that died quietly and no metrics anywhere.
    """
    import uvicorn

    with _servers_lock:
        running = _servers.get(port)
        if running is not None and running[0].is_alive():
            return running[0]
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)  # connections queue from here on, before the thread's loop accepts them
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        # log_config=None, log_level=None: a second uvicorn.Config must not reconfigure the logging of the
        # server this one runs beside. No access log: a scrape every few seconds is noise.
        config = uvicorn.Config(
            app or metrics_app(),
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        # uvicorn installs signal handlers only in the main thread; this one runs beside the app.
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"llm-exporter-metrics-{port}", daemon=True
        )
        thread.start()
        _servers[port] = (thread, server)
        return thread


def stop_metrics_server(port: int, timeout: float = 10.0) -> None:
    """Stop the server :func:`start_metrics_server` started on ``port`` (no-op if there is none)."""
    with _servers_lock:
        running = _servers.pop(port, None)
    if running is not None:
        thread, server = running
        server.should_exit = True
        thread.join(timeout)
