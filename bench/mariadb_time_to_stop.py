#!/usr/bin/python3
"""How long does MariaDB work for a client that is gone?

    bench/mariadb_time_to_stop.py [--shim PATH] [--profile P]

Starts a throw-away mariadbd (Debian 12's mariadb-server: --no-defaults,
--user=mysql, datadir in a temp dir, unix socket + TCP on 127.0.0.1,
one-thread-per-connection, innodb_lock_wait_timeout=20) once plainly and
once under the shim, and for each case runs the statement on a `mariadb`
client over TCP, kills the client (SIGKILL: the kernel closes its socket),
and measures the time until the statement is gone from
information_schema.processlist:

  SELECT SLEEP(20)                         a timed condition wait
  UPDATE of a row another session locked  an InnoDB row-lock wait
  SELECT BENCHMARK(2e9, md5('x'))          CPU only (capped at 30 s)

Then prints what the shim saw (cancelctl stats line). Run as root.
"""
import argparse
import os
import pwd
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CAP_S = 30


class Server:
    def __init__(self, shim=None, profile=None):
        self.dir = tempfile.mkdtemp(prefix="cs-mariadb-")
        pw = pwd.getpwnam("mysql")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = os.path.join(self.dir, "data")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sock = os.path.join(self.dir, "sock")
        self.port = 33000 + os.getpid() % 2000
        env = dict(os.environ)
        if shim:
            lib = os.path.join(self.dir, "libcancelshim.so")  # readable by mysql
            shutil.copy(shim, lib)
            os.chmod(lib, 0o755)
            env.update(LD_PRELOAD=lib, CANCELSHIM_LOG="info")
            if profile:
                env["CANCELSHIM_PROFILE"] = profile
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql",
             f"--socket={self.sock}", f"--port={self.port}", "--bind-address=127.0.0.1",
             "--skip-log-bin", "--innodb-lock-wait-timeout=20"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while subprocess.run(self.cli() + ["-e", "select 1"], capture_output=True).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("mariadbd did not start:\n" + open(self.log.name).read())
            time.sleep(0.1)

    def cli(self, tcp=False):
        where = ["-h", "127.0.0.1", "-P", str(self.port)] if tcp else ["-S", self.sock]
        return ["mariadb", "--no-defaults", "-uroot", "-N", "-B"] + where

    def q(self, sql):
        return subprocess.run(self.cli() + ["-e", sql], capture_output=True, text=True).stdout.strip()

    def info_of(self, cid):
        return self.q(f"select coalesce(info,'') from information_schema.processlist where id = {cid}")

    def client_leaves(self, sql):
        """ms from the client's death to its statement's end; None: > CAP_S."""
        cli = subprocess.Popen(self.cli(tcp=True) + ["-e", sql],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cid = ""
        quoted = sql.replace("'", "''")
        for _ in range(1000):
            cid = self.q("select id from information_schema.processlist "
                         f"where info = '{quoted}' and id <> connection_id()")
            if cid:
                break
            time.sleep(0.01)
        if not cid:
            raise SystemExit(f"the statement never showed in the processlist: {sql}")
        time.sleep(0.5)
        t0 = time.monotonic()
        cli.kill()
        cli.wait()
        while self.info_of(cid) == sql:
            if time.monotonic() - t0 > CAP_S:
                self.q(f"kill query {cid}")
                return None
            time.sleep(0.005)
        return (time.monotonic() - t0) * 1000

    def stop(self):
        subprocess.run(["mariadb-admin", "--no-defaults", "-S", self.sock, "-uroot", "shutdown"],
                       capture_output=True)
        self.proc.wait(60)
        pid = self.proc.pid
        text = open(self.log.name).read()
        shutil.rmtree(self.dir, ignore_errors=True)
        return pid, text


def measure(srv):
    out = {"SELECT SLEEP(20)": srv.client_leaves("select sleep(20)")}
    srv.q("create database t; create table t.r (id int primary key, v int) engine=innodb; "
          "insert into t.r values (1, 0)")
    holder = subprocess.Popen(srv.cli() + ["-e", "begin; update t.r set v = v + 1 where id = 1; "
                                           "select sleep(25); rollback"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    out["row-lock wait (innodb_lock_wait_timeout 20 s)"] = \
        srv.client_leaves("update t.r set v = v + 1 where id = 1")
    holder.kill()
    holder.wait()
    out["CPU: SELECT BENCHMARK(2e9, md5('x'))"] = \
        srv.client_leaves("select benchmark(2000000000, md5('x'))")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shim", default=os.path.join(HERE, "..", "build", "shim", "libcancelshim.so"))
    ap.add_argument("--profile", default=None, help="CANCELSHIM_PROFILE for the shim run")
    args = ap.parse_args()
    print(subprocess.run(["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True).stdout.strip())
    cols = {}
    for side in ("without shim", "shim"):
        srv = Server(os.path.abspath(args.shim) if side == "shim" else None, args.profile)
        try:
            cols[side] = measure(srv)
            if side == "shim":
                stats = subprocess.run([os.path.join(HERE, "..", "build", "tools", "cancelctl"), "stats"],
                                       capture_output=True, text=True).stdout
                mine = [l for l in stats.splitlines() if l.split()[:1] == [str(srv.proc.pid)]]
                hdr = stats.splitlines()[:1]
        finally:
            pid, log = srv.stop()
        if side == "shim":
            print("\n".join(hdr + mine) if mine else "cancelctl stats: no line for the server")
            print("\n".join(l for l in log.splitlines() if "cancelshim" in l and "info: active" in l))
    print("\nms from the client's death to the statement's end (> 30 s: runs on)")
    print("case | without shim | shim")
    for case in cols["shim"]:
        print(f"{case} | " + " | ".join("> 30 s" if cols[s][case] is None else f"{cols[s][case]:.0f}"
                                        for s in ("without shim", "shim")))


if __name__ == "__main__":
    main()
