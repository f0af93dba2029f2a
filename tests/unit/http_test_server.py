"""http_test_server.py: the HTTP/1.1 peer of tests/unit/test_http.c.

Listens on 127.0.0.1 (a free port, printed on stdout as the first line),
keeps connections alive, and exits when its stdin closes (so it never
outlives the test). Paths (any method; the request body is always read):

  /ok            200 {"ok":true,"id":"abc123"}
  /retry?v=X     503, Retry-After: X (default 2)
  /date          429, Retry-After: an HTTP-date 10 s from now
  /stall         never answers; holds the connection until the client goes
  /drop          closes the connection without answering
  /close-later?ms=N  200 {"ok":true}, then closes the kept-alive
                 connection N ms later (default 100) while it is idle
  /echo          200, the request as JSON: method, path, headers (a list of
                 [name, value] pairs in order), body
  /slow?ms=N     200 after N ms (tracks how many run at once)
  /big?n=N       200 with an N-byte body of "x"
  /stats         200 {"connections": accepted TCP connections,
                      "open": connections open now,
                      "hits": {path: requests seen},
                      "slow_peak": most /slow requests at once}
"""
import email.utils
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
stats = {"connections": 0, "open": 0, "hits": {}, "slow_peak": 0}
slow_now = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1
            stats["open"] += 1

    def finish(self):
        try:
            super().finish()
        finally:
            with lock:
                stats["open"] -= 1

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        global slow_now
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        with lock:
            stats["hits"][path] = stats["hits"].get(path, 0) + 1

        if path == "/ok":
            self.answer(200, {"ok": True, "id": "abc123"})
        elif path == "/retry":
            value = query.get("v", ["2"])[0]
            self.answer(503, {"error": "busy"}, [("Retry-After", value)])
        elif path == "/date":
            when = email.utils.formatdate(time.time() + 10, usegmt=True)
            self.answer(429, {"error": "slow down"}, [("Retry-After", when)])
        elif path == "/stall":
            self.wfile.flush()
            while self.rfile.read(1):
                pass
            self.close_connection = True
        elif path == "/drop":
            self.close_connection = True
        elif path == "/close-later":
            self.answer(200, {"ok": True})
            self.wfile.flush()
            time.sleep(int(query.get("ms", ["100"])[0]) / 1000.0)
            self.close_connection = True
        elif path == "/echo":
            self.answer(200, {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("utf-8", "replace"),
            })
        elif path == "/slow":
            ms = int(query.get("ms", ["100"])[0])
            with lock:
                slow_now += 1
                stats["slow_peak"] = max(stats["slow_peak"], slow_now)
            time.sleep(ms / 1000.0)
            with lock:
                slow_now -= 1
            self.answer(200, {"slept": ms})
        elif path == "/big":
            n = int(query.get("n", ["100000"])[0])
            self.answer(200, b"x" * n)
        elif path == "/stats":
            with lock:
                self.answer(200, json.loads(json.dumps(stats)))
        else:
            self.answer(404, {"error": "no such path"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closes our stdin (or dies): leave
    server.server_close()


if __name__ == "__main__":
    main()
