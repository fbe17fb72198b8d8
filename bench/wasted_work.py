#!/usr/bin/python3
"""Wasted work: how much a server keeps doing after its client has gone.

    bench/wasted_work.py SERVER_BIN SHIM OUT.json [--rounds R] [--clients C]
                         [--modes epoll,...]

Each request to bench/wasted_server runs 25 steps of one upstream call
(answered after 50 ms) and 30 ms of CPU: about 2 s. Clients abort (FIN) at a
random point between 10% and 90% of that. For every request we count the
upstream calls the upstream received after the abort and the server thread's
CPU time after the abort (interpolated between the server's marks). Each round
runs C concurrent requests against the plain server, then against the server
under the shim in each mode, so the sides alternate. Writes per-side totals,
medians and the reduction to OUT.json.
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

STEPS, UPSTREAM_MS, CPU_MS = 25, 50, 30


class Upstream:
    """Answers each line after UPSTREAM_MS and remembers when it got it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.calls = []          # (monotonic ns, request id)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c, c.makefile("rb") as f:
            for line in f:
                t = time.monotonic_ns()
                with self.lock:
                    self.calls.append((t, int(line.split()[0])))
                time.sleep(UPSTREAM_MS / 1000)
                try:
                    c.sendall(b"ok\n")
                except OSError:
                    return


def cpu_at(marks, t):
    """The thread's CPU time at monotonic time t, from its (t, cpu) marks."""
    for (t0, c0), (t1, c1) in zip(marks, marks[1:]):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1)
    return marks[-1][1] if t > marks[-1][0] else marks[0][1]


def one_side(server_bin, env, upstream, clients, first_id):
    p = subprocess.Popen([server_bin, str(upstream.port), str(CPU_MS)], env=env,
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split("=")[1])
    marks, ends = {}, {}

    def reader():
        for line in p.stdout:
            w = line.split()
            rid = int(w[1])
            marks.setdefault(rid, []).append((int(w[2]), int(w[3])))
            if w[0] == "end":
                ends[rid] = (int(w[4]), int(w[5]))
    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    aborts = {}

    def client(rid):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"{rid} {STEPS}\n".encode())
        time.sleep(random.uniform(0.1, 0.9) * STEPS * (UPSTREAM_MS + CPU_MS) / 1000)
        aborts[rid] = time.monotonic_ns()
        s.close()
    ids = list(range(first_id, first_id + clients))
    ts = [threading.Thread(target=client, args=(i,)) for i in ids]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    deadline = time.monotonic() + 4 * STEPS * (UPSTREAM_MS + CPU_MS) / 1000
    while len(ends) < clients and time.monotonic() < deadline:
        time.sleep(0.05)
    p.kill()
    p.wait()
    rows = []
    for rid in ids:
        if rid not in ends:
            rows.append({"id": rid, "finished": False})
            continue
        m = marks[rid]
        after_calls = sum(1 for t, i in upstream.calls if i == rid and t > aborts[rid])
        rows.append({"id": rid, "finished": True, "steps": ends[rid][0], "errno": ends[rid][1],
                     "upstream_calls_after": after_calls,
                     "cpu_s_after": (m[-1][1] - cpu_at(m, aborts[rid])) / 1e9,
                     "stop_ms_after": (m[-1][0] - aborts[rid]) / 1e6})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server_bin")
    ap.add_argument("shim")
    ap.add_argument("out")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--modes", default="epoll")
    a = ap.parse_args()
    random.seed(6)
    upstream = Upstream()
    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    sides = {"plain": base}
    for mode in a.modes.split(","):
        # "ebpf-watcher": mode ebpf with the kernel-side cancel off (bench/run).
        kcancel = {"CANCELSHIM_KCANCEL": "off"} if mode == "ebpf-watcher" else {}
        sides[mode] = dict(base, LD_PRELOAD=a.shim, CANCELSHIM_MODE=mode.removesuffix("-watcher"), **kcancel)
    rows = {s: [] for s in sides}
    next_id = 1
    for r in range(a.rounds):
        for side, env in sides.items():
            rows[side] += one_side(a.server_bin, env, upstream, a.clients, next_id)
            next_id += a.clients
    out = {"steps": STEPS, "upstream_ms": UPSTREAM_MS, "cpu_ms": CPU_MS,
           "rounds": a.rounds, "clients": a.clients, "sides": {}}
    for side, rs in rows.items():
        done = [x for x in rs if x["finished"]]
        out["sides"][side] = {
            "requests": len(rs), "unfinished": len(rs) - len(done),
            "upstream_calls_after": sum(x["upstream_calls_after"] for x in done),
            "cpu_s_after": sum(x["cpu_s_after"] for x in done),
            "median_stop_ms_after": statistics.median(x["stop_ms_after"] for x in done) if done else None,
            "ecanceled": sum(1 for x in done if x["errno"] == 125),
            "rows": rs}
    plain = out["sides"]["plain"]
    for side in sides:
        if side == "plain":
            continue
        s = out["sides"][side]
        s["calls_reduction_pct"] = 100 * (1 - s["upstream_calls_after"] / max(plain["upstream_calls_after"], 1))
        s["cpu_reduction_pct"] = 100 * (1 - s["cpu_s_after"] / max(plain["cpu_s_after"], 1e-9))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    for side, s in out["sides"].items():
        print(f"{side}: {s['requests']} aborted requests, upstream calls after abort {s['upstream_calls_after']}, "
              f"CPU after abort {s['cpu_s_after']:.3f} s, median stop {s['median_stop_ms_after']} ms after abort"
              + (f", {s['calls_reduction_pct']:.1f}% fewer calls, {s['cpu_reduction_pct']:.1f}% less CPU"
                 if "cpu_reduction_pct" in s else ""))


if __name__ == "__main__":
    sys.exit(main())
