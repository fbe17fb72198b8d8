#!/usr/bin/python3
"""A thread-per-request HTTP server whose handler does slow upstream work.

    slow_http.py UPSTREAM_PORT [--unix PATH] [--keepalive]

GET /work?id=ID&n=N makes N calls to the upstream on 127.0.0.1:UPSTREAM_PORT
(connect, send "ID I\\n", blocking recv of the answer, close; the upstream
takes ~100 ms per answer) and answers 200 with the N upstream answers as the
body. It is an ordinary program: nothing in it knows about cancelshim.
--unix PATH listens on a unix socket instead of 127.0.0.1:0 (for a proxy in
front); --keepalive speaks HTTP/1.1 with persistent connections (HTTP/1.0,
one request per connection, otherwise).

Every event is one stdout line, so the test can follow it (t is
time.monotonic_ns(), the same clock as CLOCK_MONOTONIC in C):
    listening port=P
    call id=ID i=I t=NS           (call I finished)
    error id=ID i=I errno=E type=NAME t=NS   (the handler caught OSError)
    done id=ID t=NS
Each line also ends with conn=C, a counter per accepted connection, so a test
can tell whether requests shared a connection.
"""
import http.server
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

UPSTREAM_PORT = int(sys.argv[1])
UNIX_PATH = sys.argv[sys.argv.index("--unix") + 1] if "--unix" in sys.argv else None
KEEPALIVE = "--keepalive" in sys.argv
_print_lock = threading.Lock()
_conns = iter(range(1, 1 << 62))


def say(line):
    # One write per line: handler threads share stdout.
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def upstream_call(ident, i):
    with socket.create_connection(("127.0.0.1", UPSTREAM_PORT)) as s:
        s.sendall(f"{ident} {i}\n".encode())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                raise ConnectionError("upstream closed")
            answer += chunk
        return answer


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1" if KEEPALIVE else "HTTP/1.0"

    def setup(self):
        super().setup()
        with _print_lock:
            self.conn = next(_conns)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ident = query.get("id", ["x"])[0]
        n = int(query.get("n", ["20"])[0])
        body = b""
        i = 0
        try:
            for i in range(1, n + 1):
                body += upstream_call(ident, i)
                say(f"call id={ident} i={i} t={time.monotonic_ns()} conn={self.conn}")
        except OSError as e:
            say(f"error id={ident} i={i} errno={e.errno} type={type(e).__name__} "
                f"t={time.monotonic_ns()} conn={self.conn}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        say(f"done id={ident} t={time.monotonic_ns()} conn={self.conn}")

    def log_message(self, fmt, *args):
        pass  # keep stderr for the shim's lines


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)  # handlers expect a (host, port) address


def main():
    if UNIX_PATH:
        server = UnixHTTPServer(UNIX_PATH, Handler)
        say(f"listening unix={UNIX_PATH}")
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        say(f"listening port={server.server_address[1]}")
    server.serve_forever()


if __name__ == "__main__":
    main()
