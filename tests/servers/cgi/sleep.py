#!/usr/bin/python3
"""A CGI script that sleeps: GET /cgi/sleep.py?id=ID&s=S.

Appends "start id=ID pid=PID t=NS" to the file $EVENTS (t = monotonic ns),
sleeps S seconds, appends "done ...", and answers "slept ID". When the web
server gives up on it, it is killed (SIGTERM) before it can say "done".
"""
import os
import time
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
ident = q.get("id", ["x"])[0]
seconds = float(q.get("s", ["20"])[0])


def say(what):
    with open(os.environ["EVENTS"], "a") as f:
        f.write(f"{what} id={ident} pid={os.getpid()} t={time.monotonic_ns()}\n")


say("start")
time.sleep(seconds)
say("done")
body = f"slept {ident}\n"
print("Content-Type: text/plain")
print(f"Content-Length: {len(body)}")
print()
print(body, end="", flush=True)
