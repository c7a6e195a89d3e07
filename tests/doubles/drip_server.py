"""TEST DOUBLE: an HTTP server on 127.0.0.1 that answers every request one byte at a time.

Whatever the method and path, it sends ``200`` with headers at once, then the JSON body
``{"drip": "xxx..."}`` one byte every ``drip_s`` seconds: each read a client makes gets a
byte before any per-read timeout, so only a deadline on the whole exchange ends the wait.
It counts the requests it received.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DripServer:
    """Use as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``."""

    def __init__(self, *, drip_s: float = 3.0, size: int = 200) -> None:
        self.drip_s = drip_s
        self.body = json.dumps({"drip": "x" * size}).encode()
        self.requests = 0
        self.stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DripServer:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                double.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(double.body)))
                self.end_headers()
                try:
                    for i in range(len(double.body)):
                        self.wfile.write(double.body[i : i + 1])
                        self.wfile.flush()
                        if double.stop.wait(double.drip_s):
                            return
                except ConnectionError:
                    return  # the client gave up: what the tests expect it to do

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
