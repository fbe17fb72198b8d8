#!/usr/bin/env python3
"""Fault injection of the shim's own system calls (issue 10).

    fault_suite.py --ci            the bounded slice CI runs (meson test --suite fault)
    fault_suite.py                 every failure point (tests/fault/run-long)
    fault_suite.py --only SYSCALL[,..] --scenario S --mode M -v

For each failure point of fault_points.py (a system call with a selection:
its Nth call by the shim, or every call; an errno), each scenario (a host
with clients that stay and clients that abort) and each mode, the host runs
twice under cs-fault with the same injection: without the shim (the
baseline: nothing of the shim's is there to fail, so nothing is injected)
and with it. The case passes when
  - the host's stdout (the lines of the requests whose client stayed, sorted,
    without times or ports) and its exit status are identical to the baseline;
  - every client that stayed got its whole, correct answer (no false cancel);
  - the shim wrote at most one line on stderr.
Aborted requests are not compared: with the shim they are cancelled (when
the fault lets it work), without it they run on. A case whose injection was
never reached (the shim made no such call) is counted apart. Before the
cases, each scenario and mode is checked without a fault: the shim must be
active there (mode as asked, aborted requests cancelled), or the suite
would prove nothing.

Environment: CS_SHIM, CS_FAULT, CS_FAULT_HOST (set by meson), run as root.
"""
import argparse
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_points import ENV_POINTS, KNOWN_BUGS, POINTS, SCENARIOS  # noqa: E402

SHIM = os.environ.get("CS_SHIM", "build/shim/libcancelshim.so")
FAULT = os.environ.get("CS_FAULT", "build/tests/fault/cs-fault")
HOST = os.environ.get("CS_FAULT_HOST", "build/tests/fault/fault-host")
SOURCE = os.environ.get("CS_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SLOW_HTTP = os.path.join(SOURCE, "tests", "servers", "slow_http.py")
UPSTREAM_DELAY = 0.01
VERBOSE = False


def log(msg):
    print(msg, flush=True)


# ---- the upstream: answers each line "ID I" after UPSTREAM_DELAY ----------

class Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            try:  # a cancelled request's call leaves by RST or FIN at any time
                for line in self.rfile:
                    time.sleep(UPSTREAM_DELAY)
                    self.wfile.write(b"up " + line)
            except OSError:
                return

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Upstream.Handler)
        self.request_queue_size = 128
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]


# ---- the shim's pass-through code: the host's calls, never injected -------

def skip_ranges():
    """The boot_* functions of shim/base/real.c and cs_syscall_cp issue the host's
    own calls (read, epoll_pwait, openat...): those are not the shim's."""
    out = subprocess.run(["nm", "-S", "--defined-only", SHIM], capture_output=True, text=True, check=True).stdout
    ranges = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and (f[3].startswith("boot_") or f[3] == "cs_syscall_cp"):
            lo, size = int(f[0], 16), int(f[1], 16)
            ranges += ["--skip", f"{lo:#x}-{lo + size:#x}"]
    if not ranges:
        sys.exit("fault: no boot_* or cs_syscall_cp symbol in the shim: cannot tell its calls from the host's")
    return ranges


# ---- clients ---------------------------------------------------------------

def request_bytes(scenario, ident, n):
    if scenario == "python":
        return f"GET /work?id={ident}&n={n} HTTP/1.0\r\nHost: x\r\n\r\n".encode()
    return f"{ident} {n}\n".encode()


def expected_answer(scenario, ident, n):
    if scenario == "python":
        return "".join(f"up {ident} {i}\n" for i in range(1, n + 1)).encode()
    return f"ok {ident} {n}\n".encode()


def live_client(port, scenario, ident, n, results):
    """A client that stays: records whether it got its whole answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(request_bytes(scenario, ident, n))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if scenario == "python":
            head, _, body = data.partition(b"\r\n\r\n")
            ok = head.startswith(b"HTTP/1.0 200") and body == expected_answer(scenario, ident, n)
        else:
            ok = data == expected_answer(scenario, ident, n)
        results[ident] = "ok" if ok else f"bad answer {data[:80]!r}"
    except OSError as e:
        results[ident] = f"client error {e!r}"


def abort_client(port, scenario, ident, n, after, rst):
    """A client that sends its request and leaves after `after` seconds."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(request_bytes(scenario, ident, n))
        time.sleep(after)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()
    except OSError:
        pass


def drive(port, scenario):
    """The clients of one run; returns {ident: "ok" or what went wrong}."""
    results = {}
    if scenario == "c-single":
        # One request at a time: each abort is followed by a live request on
        # the same thread, the one the cancel was aimed at.
        live_client(port, scenario, "live1", 2, results)
        abort_client(port, scenario, "gone1", 12, 0.05, False)
        live_client(port, scenario, "live2", 2, results)
        abort_client(port, scenario, "gone2", 12, 0.05, True)
        live_client(port, scenario, "live3", 2, results)
        return results
    threads = [threading.Thread(target=live_client, args=(port, scenario, f"live{i}", 4, results)) for i in (1, 2, 3)]
    threads += [threading.Thread(target=abort_client, args=(port, scenario, f"gone{i}", 30, 0.06, i == 2))
                for i in (1, 2)]
    for t in threads:
        t.start()
    time.sleep(0.08)  # after the aborts: requests accepted by the threads that were cancelled
    late = [threading.Thread(target=live_client, args=(port, scenario, f"live{i}", 2, results)) for i in (4, 5)]
    for t in late:
        t.start()
    for t in threads + late:
        t.join(20)
    return results


# ---- one run ---------------------------------------------------------------

class Run:
    def __init__(self, status, stdout, stderr, clients, report):
        self.status, self.stdout, self.stderr, self.clients, self.report = status, stdout, stderr, clients, report

    @property
    def shim_lines(self):
        return [l for l in self.stderr.splitlines() if l.startswith("cancelshim[")]

    @property
    def injected(self):
        m = re.search(r"injected=(\d+) eligible=(\d+)", self.report)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def canonical(self):
        """The stdout lines of requests whose client stayed, without times,
        ports and connection numbers, sorted (threads interleave)."""
        keep = []
        for line in self.stdout.splitlines():
            if "id=gone" in line:
                continue
            line = re.sub(r" (t|conn)=\d+", "", line)
            line = re.sub(r"port=\d+", "port=P", line)
            keep.append(line)
        return sorted(keep)

    def cancelled(self):
        return len(re.findall(r"error id=gone\d+ i=\d+ errno=125", self.stdout))


def run_host(scenario, mode, inject, with_shim, upstream, log_level="warn"):
    if scenario == "python":
        cmd = [sys.executable, SLOW_HTTP, str(upstream.port)]
    else:
        cmd = [HOST, scenario.split("-")[1], str(upstream.port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANCELSHIM_") and k != "LD_PRELOAD"}
    if with_shim:
        env.update(LD_PRELOAD=SHIM, CANCELSHIM_MODE=mode, CANCELSHIM_LOG=log_level)
    with tempfile.NamedTemporaryFile("r", prefix="cs-fault-report.") as report:
        argv = [FAULT] + inject + ["--report", report.name] + (["--hide-seccomp"] if mode == "ebpf" else []) + ["--"] + cmd
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        first = p.stdout.readline()
        m = re.search(r"port=(\d+)", first)
        clients = drive(int(m.group(1)), scenario) if m else {"listen": f"no listening line: {first!r}"}
        if scenario == "python" or not m:
            p.send_signal(signal.SIGTERM)
        else:
            try:
                with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5) as s:
                    s.sendall(b"quit 0\n")
                    s.recv(1)
            except OSError as e:
                clients["quit"] = f"quit failed {e!r}"
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += "\n(fault suite: the host did not end)"
        return Run(p.returncode, first + out, err, clients, report.read())


# ---- cases -----------------------------------------------------------------

def injector_args(name, point, selector, err, scenario, ranges):
    if name in ENV_POINTS:
        nofile = str(SCENARIOS[scenario]["nofile"])
        return ["--syscall", "none"] + [o.replace("{nofile}", nofile) for o in ENV_POINTS[name]["opts"]]
    args = ["--syscall", name, "--errno", err] + ranges
    if point["where"] == "anywhere":
        args.append("--anywhere")
    if "arg" in point:
        args += ["--arg", f"{point['arg'][0]}={point['arg'][1]}"]
    if "arg_set" in point:
        args += ["--arg-set", str(point["arg_set"])]
    if selector == "all":
        args.append("--all")
    elif selector.startswith("site="):
        args += ["--site", selector[5:]]
    else:
        args += ["--nth", selector]
    return args


def check(base, run):
    """What differs between the baseline and the run with the shim."""
    bad = []
    if run.status != base.status:
        bad.append(f"exit status {run.status} (without the shim {base.status})")
    if run.canonical() != base.canonical():
        only_base = sorted(set(base.canonical()) - set(run.canonical()))
        only_run = sorted(set(run.canonical()) - set(base.canonical()))
        bad.append(f"stdout differs: without shim only {only_base[:4]}, with shim only {only_run[:4]}")
    for ident, what in sorted(run.clients.items()):
        if what != "ok":
            bad.append(f"{ident}: {what}")
    if len(run.shim_lines) > 1:
        bad.append(f"{len(run.shim_lines)} shim lines on stderr: {run.shim_lines[:3]}")
    return bad


def known_bug(name, sel, scenario, mode):
    for point in (f"{name}:{sel}", f"{name}:{sel.split('=')[0]}", name):  # site=OFF matches "site"
        for key in ((point, scenario, mode), (point, scenario, "*"), (point, "*", mode), (point, "*", "*")):
            if key in KNOWN_BUGS:
                return KNOWN_BUGS[key]
    return None


def command_line(name, inject, scenario, mode):
    """How to run the case again: the suite for this point alone, and the
    injector's own command (the --skip ranges elided: fault_suite.py
    computes them from the shim's symbols)."""
    host = f"python3 {SLOW_HTTP} UPSTREAM_PORT" if scenario == "python" else \
        f"{HOST} {scenario.split('-')[1]} UPSTREAM_PORT"
    shown = [a for i, a in enumerate(inject) if a != "--skip" and (i == 0 or inject[i - 1] != "--skip")]
    return (f"tests/fault/run-long BUILD_DIR --only {name} --scenario {scenario} --mode {mode} --strict -v\n"
            f"    injector: LD_PRELOAD={SHIM} CANCELSHIM_MODE={mode} {FAULT} {' '.join(shown)} --skip ..."
            f"{' --hide-seccomp' if mode == 'ebpf' else ''} -- {host}")


def watch_args(ranges):
    """Counts the shim's own calls of every system call of the table."""
    args = ["--syscall", "none"] + ranges
    for name, point in POINTS.items():
        if point["where"] == "shim":
            args += ["--watch", name]
    return args


def call_sites(report):
    """{syscall: [(offset, calls)]} from a cs-fault report."""
    sites = {}
    for m in re.finditer(r"site syscall=(\w+) off=(0x[0-9a-f]+) calls=(\d+)", report):
        sites.setdefault(m.group(1), []).append((m.group(2), int(m.group(3))))
    return sites


def source_line(off):
    """file:line of the call site (the offset is just after `syscall`; the
    innermost frame is raw_syscall.h, its caller is the call site)."""
    try:
        out = subprocess.run(["addr2line", "-i", "-e", SHIM, hex(int(off, 16) - 2)], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    frames = [os.path.basename(f).split(" ")[0] for f in out if "raw_syscall.h" not in f]
    return frames[0] if frames else "?"


def discover(scenario, mode, upstream, ranges):
    """One run with the shim and no fault: it must be active in the mode asked
    and cancel the aborted requests; counts the shim's calls by call site.
    The same injector without the shim is the baseline of every "shim"
    point of this scenario and mode (its filter notifies all their system
    calls, and without the shim none of their calls is the shim's)."""
    args = watch_args(ranges)
    run = run_host(scenario, mode, args, True, upstream, log_level="info")
    problems = []
    if f"mode {mode}" not in run.stderr:
        problems.append(f"the shim is not active in mode {mode}: {run.stderr.strip()[:300]!r}")
    if run.cancelled() == 0:
        problems.append("no aborted request was cancelled")
    problems += [f"{i}: {w}" for i, w in run.clients.items() if w != "ok"]
    base = run_host(scenario, mode, args, False, upstream)
    if call_sites(base.report):
        problems.append(f"without the shim, calls were taken for the shim's: {base.report.strip()[:300]}")
    return problems, call_sites(run.report), base


def selectors(name, point, count, ci, scenario, sites):
    if name in ENV_POINTS:
        return ["-"]
    if point["where"] == "shim" and count == 0:
        return []
    # The CI slice: every call failed, and the first three one at a time on
    # the thread-per-connection host; every call failed on the others.
    sel = ["all"]
    deep = (3 if scenario == "c-threads" else 0) if ci else 8
    last = count if point["where"] == "shim" else 3
    sel += [str(n) for n in range(1, min(deep, last) + 1)] if last > 1 else []
    if not ci and len(sites) > 1:
        sel += [f"site={off}" for off, _ in sites]
    return sel


def main():
    global VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--ci", action="store_true", help="the bounded slice")
    ap.add_argument("--only", help="comma list of points (system calls or environment points)")
    ap.add_argument("--scenario", action="append")
    ap.add_argument("--mode", action="append")
    ap.add_argument("--sites", action="store_true", help="list the shim's call sites seen, with source lines")
    ap.add_argument("--strict", action="store_true", help="known bugs fail the suite too")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.v
    if os.geteuid() != 0:
        log("fault: SKIP: needs root (seccomp listener, mount namespace, mode ebpf)")
        return 77
    # Without -Dbpf (CS_HAVE_BPF=0, set by meson) the shim has no mode ebpf.
    modes = a.mode or (["epoll"] if os.environ.get("CS_HAVE_BPF") == "0" else ["epoll", "ebpf"])
    scenarios = a.scenario or list(SCENARIOS)
    names = a.only.split(",") if a.only else list(POINTS) + list(ENV_POINTS)
    ranges = skip_ranges()
    upstream = Upstream()
    started = time.monotonic()

    found, shared_base = {}, {}
    for scenario in scenarios:
        for mode in modes:
            problems, found[scenario, mode], shared_base[scenario, mode] = discover(scenario, mode, upstream, ranges)
            if problems:
                log(f"FAIL sanity {scenario} {mode}: " + "; ".join(problems))
                return 1
            if a.sites:
                for name, sites in sorted(found[scenario, mode].items()):
                    log(f"{scenario} {mode} {name}: " + ", ".join(f"{off} {source_line(off)} x{n}" for off, n in sites))
    log(f"sanity: the shim is active and cancels in {', '.join(scenarios)} x {', '.join(modes)}")

    cases = passed = failed = unreached = xfail = xpass = 0
    points, failures = set(), []
    never = set(n for n in names if n in POINTS and POINTS[n]["where"] == "shim")
    for name in names:
        point = POINTS.get(name) or ENV_POINTS[name]
        errnos = point.get("errnos", ["-"])
        if a.ci:
            errnos = errnos[:1]
        for scenario in scenarios:
            if scenario not in point.get("hosts", scenarios):
                continue
            for mode in modes:
                if mode not in point.get("modes", modes):
                    continue
                sites = found[scenario, mode].get(name, [])
                count = sum(n for _, n in sites)
                if sites:
                    never.discard(name)
                for err in errnos:
                    base = shared_base[scenario, mode] if point.get("where") == "shim" else None
                    for sel in selectors(name, point, count, a.ci, scenario, sites):
                        inject = injector_args(name, point, sel, err, scenario, ranges)
                        if base is None:
                            base = run_host(scenario, mode, inject, False, upstream)
                            if base.injected[0]:
                                log(f"FAIL {name} {scenario} {mode}: the selection is not exact: without the shim "
                                    f"{base.injected[0]} calls were failed")
                                return 1
                        if any(w != "ok" for w in base.clients.values()) or "error id=live" in base.stdout:
                            log(f"FAIL {name} {scenario} {mode}: the baseline itself fails: {base.clients} "
                                f"{base.stderr[-300:]!r}")
                            return 1
                        run = run_host(scenario, mode, inject, True, upstream)
                        inj, eligible = run.injected
                        label = f"{name}:{sel}:{err} {scenario} {mode}"
                        if name not in ENV_POINTS and inj == 0:
                            unreached += 1
                            if VERBOSE:
                                log(f"unreached {label}")
                            continue
                        cases += 1
                        points.add((name, sel, err))
                        bad = check(base, run)
                        bug = None if a.strict else known_bug(name, sel, scenario, mode)
                        if not bad:
                            passed += 1
                            if bug:
                                xpass += 1
                                log(f"XPASS {label}: passed, though listed as a known bug ({bug}): remove it from KNOWN_BUGS "
                                    f"if it keeps passing")
                            elif VERBOSE:
                                log(f"ok {label} (injected {inj} of {eligible})")
                        elif bug:
                            xfail += 1
                            log(f"KNOWN BUG {label}: {bug}: {'; '.join(bad)[:300]}")
                        else:
                            failed += 1
                            failures.append(label)
                            log(f"FAIL {label} (injected {inj} of {eligible}): {'; '.join(bad)}\n"
                                f"    stderr: {run.stderr.strip()[-400:]!r}\n"
                                f"    rerun: {command_line(name, inject, scenario, mode)}")
    elapsed = time.monotonic() - started
    if never:
        log(f"never made by the shim in these scenarios: {', '.join(sorted(never))}")
    log(f"fault: {len(points)} failure points x {len(scenarios)} scenarios x {len(modes)} modes: "
        f"{cases} cases run, {passed} passed, {failed} failed, {xfail} known bugs (listed above), "
        f"{xpass} known bugs now passing; {unreached} selections not reached; {elapsed:.0f} s")
    # For scripts/test-summary.py: the cases count like Criterion tests (known
    # bugs apart: they are listed above and do not fail the suite).
    log(f"Synthesis: Tested: {passed + failed} | Passing: {passed} | Failing: {failed} | Crashing: 0")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
