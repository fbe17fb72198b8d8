"""A WSGI app whose requests do slow upstream work, for the tests of gunicorn,
waitress and uWSGI.

    SLOW_UPSTREAM_PORT=P gunicorn --chdir tests/servers slow_wsgi:app

GET /work?id=ID&n=N makes N calls to the upstream on 127.0.0.1:P (connect,
send "ID I\\n", blocking recv of the answer, close) and answers 200 with the N
answers; &port=Q calls the upstream on port Q instead (the load tests use a
faster one). On OSError it logs and re-raises, so the server's own error path
runs.
Nothing in it knows about cancelshim. One stdout line per event (t is
time.monotonic_ns(), the same clock as CLOCK_MONOTONIC in C):
    call id=ID i=I t=NS pid=PID
    error id=ID i=I errno=E t=NS pid=PID
    done id=ID t=NS pid=PID
"""
import os
import socket
import sys
import time
import urllib.parse

UPSTREAM_PORT = int(os.environ["SLOW_UPSTREAM_PORT"])


def say(line):
    sys.stdout.write(f"{line} pid={os.getpid()}\n")
    sys.stdout.flush()


def upstream_call(port, ident, i):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"{ident} {i}\n".encode())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                raise ConnectionError("upstream closed")
            answer += chunk
        return answer


def app(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    ident = query.get("id", ["x"])[0]
    n = int(query.get("n", ["20"])[0])
    port = int(query.get("port", [UPSTREAM_PORT])[0])
    body = b""
    i = 0
    try:
        for i in range(1, n + 1):
            body += upstream_call(port, ident, i)
            say(f"call id={ident} i={i} t={time.monotonic_ns()}")
    except OSError as e:
        say(f"error id={ident} i={i} errno={e.errno} t={time.monotonic_ns()}")
        raise
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    say(f"done id={ident} t={time.monotonic_ns()}")
    return [body]
