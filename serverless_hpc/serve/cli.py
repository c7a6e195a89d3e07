"""``shpc serve``: the dashboard over a results directory.

Plugged into the ``shpc`` parser through ``add_parser(subparsers)`` (see
``serverless_hpc.cli.PLUGIN_COMMANDS``). Only the standard library is imported at module
level; FastAPI and uvicorn (the ``serve`` extra) load when the command runs.

The listening socket is bound here, before uvicorn starts, so a port in use or an address
that cannot be bound is one ``error:`` line and exit 2 (as every unavailable resource is).
``--port`` is 1-65535, ``--token`` must not be empty; the token is registered as a secret
(:mod:`serverless_hpc.redact`), so the ``-vv`` access log never shows it.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNAVAILABLE = 2


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (no token needed there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> frozenset[str]:
    """Host header names this server answers to: loopback names, plus ``host`` itself.

    A wildcard bind (0.0.0.0, ::) accepts any Host header, behind the token.
    """
    from serverless_hpc.serve.app import LOOPBACK_NAMES

    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - the user asked for every interface
        return frozenset({"*"})
    return LOOPBACK_NAMES | {host.lower(), f"[{host.lower()}]"}


def _port(value: str) -> int:
    """A TCP port, 1-65535 (argparse type)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value[:40]!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {port}")
    return port


def _token(value: str) -> str:
    """A non-empty token without spaces (argparse type)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the token must not be empty")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError("the token must be printable, without spaces")
    return value


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (the first address that binds), ready for uvicorn.

    ``OSError`` naming the address when none binds (port in use, no such address).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.set_inheritable(True)
        return sock
    raise last or OSError(f"no address for {host}")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted."""
    try:
        import uvicorn

        from serverless_hpc.serve.app import create_app
        from serverless_hpc.serve.runs import RunManager
    except ImportError as exc:
        print(
            f"error: 'shpc serve' needs the serve extra (pip install -e '.[serve]'): {exc}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    if args.max_runs < 1:
        print(f"error: --max-runs must be >= 1, got {args.max_runs}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    token = args.token
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host} port {args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    with sock:
        return _serve(args, sock, token, create_app, RunManager, uvicorn)


def _serve(
    args: argparse.Namespace,
    sock: socket.socket,
    token: str | None,
    create_app: Any,
    run_manager: Any,
    uvicorn: Any,
) -> int:
    """Serve on the bound ``sock`` until interrupted (the rest of :func:`cmd_serve`)."""
    runs = run_manager(args.results, max_runs=args.max_runs)
    app = create_app(runs, token=token, allowed_hosts=allowed_hosts(args.host))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}/"
    print(f"serving {runs.results} on {url}", file=sys.stderr)
    if token is not None and args.token is None:
        # Printed once, here: the page keeps it in a cookie after the first visit.
        print(f"token (required on every request): {token}", file=sys.stderr)
        print(f"open: {url}?token={token}", file=sys.stderr)
    config: Any = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning" if args.verbose == 0 else "info",
        # uvicorn's own dictConfig would replace every handler of the process, the CLI's
        # credential-scrubbing one included: its loggers go through the CLI's logging.
        log_config=None,
        access_log=args.verbose > 1,
        timeout_graceful_shutdown=5,
    )
    # uvicorn shuts down gracefully on Ctrl-C, then re-raises the signal: not an error here.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])
    going = runs.active()
    if going:
        # They run in their own process groups: a server started again picks them up.
        print(f"stopped; run(s) {', '.join(going)} go on", file=sys.stderr)
    return EXIT_OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``shpc`` sub-command parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="web dashboard: start runs, watch them live, read and compare results"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other asks for a token)",
    )
    p.add_argument("--port", type=_port, default=8000, help="port, 1-65535 (default 8000)")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results directory, as shpc bench writes it (default results/)",
    )
    p.add_argument(
        "--token",
        type=_token,
        help="token every request must carry (default: none on loopback, else generated "
        "and printed once)",
    )
    p.add_argument(
        "--max-runs", type=int, default=1, help="runs going at once from the page (default 1)"
    )
    p.set_defaults(func=cmd_serve)
    return p
