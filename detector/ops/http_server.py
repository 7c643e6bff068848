"""One small HTTP server: /metrics (Prometheus text format), /healthz and /readyz. Nothing else is served."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detector.ops.health import Health


def make_server(host: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.live() if path == "/healthz" else health.ready()
                self._reply(200 if ok else 503, (detail + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: /metrics, /healthz and /readyz are served\n", "text/plain")

        def do_POST(self) -> None:
            self._reply(405, b"method not allowed\n", "text/plain")

        do_PUT = do_DELETE = do_PATCH = do_POST

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds: stay quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="tsad-http", daemon=True)
    thread.start()
    return thread
