#!/usr/bin/python3
"""How fast does a PostgreSQL backend stop after its client goes away?

    bench/pg_time_to_stop.py [--shim PATH] [--runs N] [--modes epoll,ebpf,epoll:none]
                             [--pgbench-seconds S]

Starts a throw-away PostgreSQL 15 cluster (Debian's /usr/lib/postgresql/15)
once plainly and once per shim mode (LD_PRELOAD of libcancelshim.so with
CANCELSHIM_MODE; "MODE:PROFILE" also sets CANCELSHIM_PROFILE, so
"epoll:none" is the shim without the postgresql profile, which it otherwise
chooses by itself), listening on 127.0.0.1, and, for each query below and each
client_connection_check_interval (off, 1000 ms, 100 ms), runs the query on a
raw-socket TCP client, closes that client once the query is running, and
measures the time until the backend process is gone (or a zombie). Prints a
table of medians (ms) over --runs runs; "runs to end" means the backend
stopped only when the query finished, i.e. it did the whole work for nobody.
Then pgbench TPS (select-only, 4 clients, S seconds) on each cluster, and on
the plain one with each check interval (0 skips it).

Run as root (the server runs as user postgres) or as any ordinary user.
Default shim: build/shim/libcancelshim.so, else /tmp/build-*/shim/...
"""
import argparse
import glob
import os
import pwd
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

PGBIN = "/usr/lib/postgresql/15/bin"
QUERIES = [
    ("pg_sleep(20)", "select pg_sleep(20)"),
    ("CPU: sum over generate_series(1,4e7)",
     "select sum(g) from generate_series(1, 40000000) g"),
    ("CPU, no I/O at all: count of generate_series(1,1e8) in the target list",
     "select count(*) from (select generate_series(1, 100000000)) s"),
    ("sort spilling to disk (work_mem 1MB, 2e6 rows)",
     "set work_mem = '1MB'; "
     "select count(*) from (select g from generate_series(1, 2000000) g "
     "order by md5(g::text)) s"),
]
INTERVALS = ["0", "1000", "100"]


class Pg:
    """A raw v3-protocol session: we own the socket, so we decide when it dies."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr)
        params = b"user\0postgres\0database\0postgres\0\0"
        self.s.sendall(struct.pack("!ii", 8 + len(params), 3 << 16) + params)
        self.pid = None
        self._until_ready()

    def _msg(self):
        head = self._n(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        return kind, self._n(length - 4)

    def _n(self, n):
        b = b""
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            if not chunk:
                raise ConnectionError("server closed the connection")
            b += chunk
        return b

    def _until_ready(self):
        first, error = None, None
        while True:
            kind, body = self._msg()
            if kind == b"K":
                self.pid = struct.unpack("!i", body[:4])[0]
            elif kind == b"D" and first is None:
                n = struct.unpack("!i", body[2:6])[0]
                first = body[6:6 + n].decode() if n >= 0 else None
            elif kind == b"E":
                error = body
            elif kind == b"Z":
                if error:
                    raise RuntimeError(error)
                return first

    def send(self, sql):
        q = sql.encode() + b"\0"
        self.s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)

    def query(self, sql):
        self.send(sql)
        return self._until_ready()


def stopped(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone between open and read
        return True


def default_shim():
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.path.join(here, "..", "build", "shim", "libcancelshim.so")]
    cands += sorted(glob.glob("/tmp/build-*/shim/libcancelshim.so"))
    for c in cands:
        if os.path.exists(c):
            return os.path.abspath(c)
    sys.exit("libcancelshim.so not found: pass --shim")


class Cluster:
    def __init__(self, shim, mode=None):
        self.dir = tempfile.mkdtemp(prefix="cs-pgbench-")
        self.pre = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.pre = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
        data = os.path.join(self.dir, "data")
        subprocess.run(self.pre + [f"{PGBIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                   "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ)
        if shim:
            lib = os.path.join(self.dir, "libcancelshim.so")  # readable by postgres
            shutil.copy(shim, lib)
            os.chmod(lib, 0o755)
            env["LD_PRELOAD"] = lib
            env["CANCELSHIM_LOG"] = "info"
            env["CANCELSHIM_MODE"], _, profile = mode.partition(":")
            if profile:
                env["CANCELSHIM_PROFILE"] = profile
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        port = 5400 + os.getpid() % 500
        self.proc = subprocess.Popen(
            self.pre + [f"{PGBIN}/postgres", "-D", data, "-p", str(port),
                        "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                        "-c", "fsync=off", "-c", "logging_collector=off"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = port
        self.sock = ("127.0.0.1", port)
        deadline = time.monotonic() + 30
        while True:
            try:
                Pg(self.sock).s.close()
                break
            except (OSError, ConnectionError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    sys.exit("postgres did not start:\n" + open(self.log.name).read())
                time.sleep(0.05)
        self.mon = Pg(self.sock)

    def stop(self):
        self.proc.send_signal(2)
        self.proc.wait(20)
        text = open(self.log.name).read()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


def query_alone(cl, sql):
    c = Pg(cl.sock)
    t = time.monotonic()
    c.query(sql)
    c.s.close()
    return (time.monotonic() - t) * 1000


def one_run(cl, sql, interval, cap_s):
    c = Pg(cl.sock)
    c.query(f"set client_connection_check_interval = {interval}")
    c.send(sql)
    # Wait until the query runs (and, for pg_sleep, sleeps), then 300 ms more
    # so a working query is well into its work.
    while True:
        r = cl.mon.query("select coalesce(state,'')||'/'||coalesce(wait_event,'') "
                         f"from pg_stat_activity where pid = {c.pid}")
        if r and r.startswith("active/") and ("pg_sleep" not in sql or r == "active/PgSleep"):
            break
        time.sleep(0.002)
    time.sleep(0.3)
    t0 = time.monotonic()
    c.s.close()
    while not stopped(c.pid):
        if time.monotonic() - t0 > cap_s:
            return None
        time.sleep(0.001)
    return (time.monotonic() - t0) * 1000


def pgbench_tps(cl, seconds, interval="0"):
    env = dict(os.environ, PGOPTIONS=f"-c client_connection_check_interval={interval}")
    base = [f"{PGBIN}/pgbench", "-h", "127.0.0.1", "-p", str(cl.port), "-U", "postgres"]
    subprocess.run(base + ["-i", "-s", "1", "-q", "postgres"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    out = subprocess.run(base + ["-S", "-c", "4", "-j", "2", "-T", str(seconds), "postgres"],
                         check=True, capture_output=True, text=True, env=env).stdout
    for line in out.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    return None


def side_name(m):
    mode, _, profile = m.partition(":")
    return f"shim, mode {mode}" + (f", profile {profile}" if profile else ", profile auto (postgresql)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shim", default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="epoll,ebpf,epoll:none")
    ap.add_argument("--pgbench-seconds", type=int, default=5)
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    shim = args.shim or default_shim()
    print(f"PostgreSQL: {subprocess.run([PGBIN + '/postgres', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"shim: {shim}; median of {args.runs} runs; ms from client close to backend exit\n")
    results, tps = {}, []
    for with_shim in [False] + modes:
        cl = Cluster(shim if with_shim else None, with_shim or None)
        try:
            if args.pgbench_seconds:
                for iv in (INTERVALS if not with_shim else ["0"]):
                    tps.append((side_name(with_shim) if with_shim else "stock",
                                "off" if iv == "0" else f"{iv} ms", pgbench_tps(cl, args.pgbench_seconds, iv)))
            for name, sql in QUERIES:
                alone = query_alone(cl, sql) if "pg_sleep" not in sql else 20000.0
                results[(name, "query alone")] = alone
                for iv in INTERVALS:
                    times = [one_run(cl, sql, iv, 30) for _ in range(args.runs)]
                    ok = [t for t in times if t is not None]
                    med = statistics.median(ok) if len(ok) == len(times) else None
                    results[(name, with_shim, iv)] = med
        finally:
            log = cl.stop()
        bad = [l for l in log.splitlines()
               if "terminated by signal" in l or "PANIC" in l
               or ("exited with exit code" in l and "logical replication launcher" not in l)]
        if with_shim and "info: active:" not in log:
            print("WARNING: the shim's start line is missing from the server log")
        if with_shim:
            # The last start line is the server's (setpriv's comes first).
            started = [l for l in log.splitlines() if "info: active:" in l]
            active = started[-1:] + [l for l in log.splitlines() if "eBPF watcher" in l or "ebpf unavailable" in l]
            print(f"mode {with_shim}: " + (active[0].split("info: ", 1)[-1] if active else "?")
                  + ("; the postmaster loaded the eBPF program" if any("eBPF watcher attached" in l for l in active) else ""))
        if bad:
            print("SERVER LOG PROBLEMS:\n" + "\n".join(bad))

    def cell(v, alone):
        # Longer than the slowest check interval plus slack: the backend
        # did not notice the client and ran the query to its end.
        if v is None:
            return "> 30 s"
        return f"{v:.0f}" + (" (runs to end)" if v > 2000 else "")

    def side(m):
        mode, _, profile = m.partition(":")
        return f"shim ({mode}" + (f", profile {profile})" if profile else ")")

    hdr = ["query (alone: ms)", "check interval", "without shim"] + [side(m) for m in modes]
    rows = []
    for name, _ in QUERIES:
        alone = results[(name, "query alone")]
        for iv in INTERVALS:
            rows.append([f"{name} ({alone:.0f})", "off" if iv == "0" else f"{iv} ms",
                         cell(results[(name, False, iv)], alone)]
                        + [cell(results[(name, m, iv)], alone) for m in modes])
    print()
    table(hdr, rows)
    if tps:
        print(f"\npgbench -S, 4 clients, {args.pgbench_seconds} s, TCP 127.0.0.1:")
        table(["server", "check interval", "TPS"], [[a, b, f"{t:.0f}" if t else "?"] for a, b, t in tps])


def table(hdr, rows):
    widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
    for r in [hdr, ["-" * w for w in widths]] + rows:
        print(" | ".join(x.ljust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    main()
