"""A thread-per-connection server for the statistics tests, run unmodified
under the shim with /usr/bin/python3.

    stats_server.py UPSTREAM_PORT [LISTEN...]

Each client sends one line. "quick ..." is answered at once ("ok"); "slow ..."
is forwarded to the upstream and its answer relayed, so the handler thread
blocks in recv() on the upstream socket: the call the shim fails with
ECANCELED when the client goes away. The server closes each client itself
(no shutdown first), so a client that waits for EOF before closing never shows
the server a disconnect. Prints "port N" when listening, then one line per
request: "answered line=..." or "cancelled errno=E line=...". SIGTERM ends it
through a normal interpreter exit (atexit handlers run).

With LISTEN arguments (a TCP port on 127.0.0.1, or unix:PATH), it listens on
each of them instead of one port of its own choosing, each with its own
accepting thread, and prints "listening" once all are."""
import signal
import socket
import sys
import threading

UPSTREAM = int(sys.argv[1])
say_lock = threading.Lock()


def say(text):
    # print() writes the text and the newline separately: lines from two
    # threads would interleave.
    with say_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def handle(conn):
    with conn:
        line = read_line(conn)
        if line.startswith("slow"):
            try:
                with socket.create_connection(("127.0.0.1", UPSTREAM)) as up:
                    up.sendall((line + "\n").encode())
                    answer = up.recv(100)
            except OSError as e:
                say(f"cancelled errno={e.errno} line={line}")
                return
            conn.sendall(answer)
        else:
            conn.sendall(b"ok\n")
    say(f"answered line={line}")


def stop(signo, frame):
    raise SystemExit(0)


signal.signal(signal.SIGTERM, stop)


def listen(where):
    if where.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(where[5:])
    else:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(where)))
    s.listen(64)
    return s


def serve(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


try:
    if len(sys.argv) > 2:
        listeners = [listen(w) for w in sys.argv[2:]]
        for ls in listeners:
            threading.Thread(target=serve, args=(ls,), daemon=True).start()
        say("listening")
        while True:
            signal.pause()
    else:
        listener = listen("0")
        say(f"port {listener.getsockname()[1]}")
        serve(listener)
except SystemExit:
    pass
