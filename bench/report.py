#!/usr/bin/python3
"""Turns bench/run's raw measurements (WORK dir) into OUT/results.json,
OUT/results.md (figure, target, measured, met?) and the .dat files that
bench/plots.gp draws.

    bench/report.py WORK OUT
"""
import glob
import json
import os
import re
import statistics
import sys

NOT_YET = "not yet: the shim has no {} mode"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    work, out = sys.argv[1], sys.argv[2]
    meta = json.load(open(f"{work}/meta.json"))
    meta["loadavg_end"] = json.load(open(f"{work}/loadavg_end.json"))
    measured = meta["measured"].split()
    missing = meta["missing"].split()
    sides = ["plain"] + measured
    res = {"meta": meta}
    rows = []        # (figure, target, measured, met)

    def row(fig, target, value, met):
        rows.append((fig, target, value, "yes" if met is True else "no" if met is False else met))

    def not_yet(fig, target):
        for m in missing:
            row(f"{fig} ({m})", target, NOT_YET.format(m), "—")

    # 1. hot path
    hp = {}
    for line in open(f"{work}/hotpath.txt").read().splitlines()[1:]:
        k, a, b, d = line.split()
        hp[k] = {"without": float(a), "with": float(b), "added": float(d)}
    res["hotpath"] = hp
    worst = max(v["added"] for v in hp.values())
    row("1. Hot path: instructions added per call (worst of " + ", ".join(hp) + ")", "≤ 20",
        f"{worst:.1f} (" + ", ".join(f"{k} {v['added']:.0f}" for k, v in hp.items()) + ")", worst <= 20)

    # 2-3. rates
    rates = {}
    for line in open(f"{work}/rates.tsv"):
        kind, conn, side, rnd, rate = line.split("\t")
        rates.setdefault((kind, conn), {}).setdefault(side, []).append(float(rate))
    res["rates"] = {}
    names = {"tpc": "thread-per-connection C server", "nginx": "nginx"}
    with open(f"{out}/throughput.dat", "w") as f:
        f.write("case " + " ".join(sides) + "\n")
        for (kind, conn), by in rates.items():
            plain = med(by["plain"])
            entry = {s: {"runs": by[s], "median": med(by[s])} for s in by}
            for s in measured:
                entry[s]["ratio_pct"] = 100 * med(by[s]) / plain if plain else float("nan")
            res["rates"][f"{kind}/{conn}"] = entry
            f.write(f"\"{kind} {'keep-alive' if conn == 'keepalive' else 'new conn.'}\" "
                    + " ".join(f"{med(by[s]) / 1000:.2f}" for s in sides) + "\n")
            fig = ("2. Throughput" if conn == "keepalive" else "3. Connection rate") + f", {names[kind]}"
            for s in measured:
                # The targets: 98% kept alive; a new connection per request
                # 97% in mode epoll and with the watcher, 99% when the kernel
                # cancels (issue 13).
                target = 98 if conn == "keepalive" else 99 if s == "ebpf" else 97
                r = entry[s]["ratio_pct"]
                row(f"{fig} ({s})", f"≥ {target}% of plain",
                    f"{r:.1f}% ({med(by[s]):,.0f} vs {plain:,.0f} req/s, medians of {len(by[s])}; "
                    f"rounds ranged {min(by[s]):,.0f}–{max(by[s]):,.0f} vs {min(by['plain']):,.0f}–{max(by['plain']):,.0f})",
                    r >= target)
            not_yet(fig, f"≥ {99 if conn == 'close' else 98}% of plain")

    sc, scw = {}, {}
    for line in open(f"{work}/syscalls.tsv"):
        side, a, b, per, wait_us = line.rstrip("\n").split("\t")
        (scw if wait_us != "0" else sc)[side] = float(per)
    res["syscalls_per_connection"] = sc
    res["syscalls_per_connection_with_a_wait"] = scw
    for s in measured:
        # Issue 13: no system call added per connection when the kernel
        # cancels (the watcher is not woken per connection). Rounded to the
        # figure's precision: strace's counts vary by a few calls per run.
        target = "+0.0" if s == "ebpf" else "report"
        row(f"3. Syscalls per connection, C server ({s})", target,
            f"{sc[s]:.2f} (plain {sc['plain']:.2f}, +{sc[s] - sc['plain']:.2f})",
            round(sc[s] - sc["plain"], 1) <= 0 if s == "ebpf" else "—")
        row(f"3. Syscalls per connection, requests with one cancellable wait ({s})", target,
            f"{scw[s]:.2f} (plain {scw['plain']:.2f}, +{scw[s] - scw['plain']:.2f})",
            round(scw[s] - scw["plain"], 1) <= 0 if s == "ebpf" else "—")
    not_yet("3. Syscalls per connection, C server", "report")

    # 4. cancel latency
    lat = {}
    cdf_cols, cdf_names = [], []
    for line in open(f"{work}/latency.tsv"):
        mode, load, how, rest = line.rstrip("\n").split("\t")
        kv = dict(x.split("=") for x in rest.split())
        lat[f"{mode}/{load}/{how}"] = {k: float(v) for k, v in kv.items()}
        xs = sorted(int(x) for x in open(f"{work}/lat.{mode}.{load}.{how}"))
        if xs:
            cdf_cols.append([xs[min(len(xs) - 1, int(q / 1000 * len(xs)))] / 1000 for q in range(1000)])
            cdf_names.append(f"{mode}-{how}-{load}")
        v = lat[f"{mode}/{load}/{how}"]
        target = "≤ 200 µs p99" if load == "idle" else "report"
        met = v["p99_us"] <= 200 and v["missed"] == 0 if load == "idle" else "—"
        # The shim's own histogram: from the kernel's timestamp of the TCP
        # event in mode ebpf (either canceller), from the watcher's wake-up
        # in mode epoll.
        since = "kernel event" if mode.startswith("ebpf") else "watcher wake-up"
        # Issue 13, when the kernel cancels: p99 ≤ 100 µs from the kernel's
        # event (the histogram's bucket bound), and below mode epoll's from
        # the client's close (compared once both are read: below).
        if mode == "ebpf" and load == "idle" and "shim_p99_le_us" in v:
            target = "≤ 100 µs p99 from the kernel's event; below epoll's from the close"
            ep = lat.get(f"epoll/{load}/{how}", {}).get("p99_us", float("inf"))  # epoll is measured first
            met = v["shim_p99_le_us"] <= 100 and v["missed"] == 0 and v["p99_us"] < ep
        shim = (f"; shim's histogram from the {since}: p50 < {v['shim_p50_le_us']:.0f} µs, "
                f"p99 < {v['shim_p99_le_us']:.0f} µs") if "shim_p99_le_us" in v else ""
        row(f"4. Cancel latency, {how.upper()}, {load} ({mode})", target,
            f"from the client's close: p50 {v['p50_us']:.0f} µs, p99 {v['p99_us']:.0f} µs, max {v['max_us']:.0f} µs "
            f"({v['n']:.0f} aborts, {v['missed']:.0f} missed){shim}", met)
    for m in missing:
        row(f"4. Cancel latency ({m}; kernel timestamp)", "≤ 200 µs p99", NOT_YET.format(m), "—")
    res["cancel_latency"] = lat
    with open(f"{out}/cancel_cdf.dat", "w") as f:
        f.write("fraction " + " ".join(cdf_names) + "\n")
        for q in range(1000):
            f.write(f"{q / 1000:.3f} " + " ".join(f"{c[q]:.1f}" for c in cdf_cols) + "\n")

    # 5. wasted work
    w = json.load(open(f"{work}/wasted.json"))
    for s in w["sides"].values():
        s.pop("rows", None)
    res["wasted_work"] = w
    p = w["sides"]["plain"]
    with open(f"{out}/wasted.dat", "w") as f:
        f.write("side upstream_calls cpu_s\n")
        for s in sides:
            f.write(f"{s} {w['sides'][s]['upstream_calls_after']} {w['sides'][s]['cpu_s_after']:.3f}\n")
    for s in measured:
        x = w["sides"][s]
        row(f"5. Wasted work after abort: upstream calls ({s})", "≥ 95% less",
            f"{x['calls_reduction_pct']:.1f}% less ({x['upstream_calls_after']} vs {p['upstream_calls_after']} "
            f"over {x['requests']} aborted requests)", x["calls_reduction_pct"] >= 95)
        row(f"5. Wasted work after abort: CPU seconds ({s})", "≥ 95% less",
            f"{x['cpu_reduction_pct']:.1f}% less ({x['cpu_s_after']:.2f} s vs {p['cpu_s_after']:.2f} s; "
            f"median stop {x['median_stop_ms_after']:.0f} ms after the abort)", x["cpu_reduction_pct"] >= 95)
    not_yet("5. Wasted work after abort", "≥ 95% less")

    # 6. PostgreSQL
    pg = open(f"{work}/pg.txt").read()
    res["postgresql"] = pg
    # The script's tables: "query | interval | without | shim (m1) | ..." and
    # "server | check interval | TPS".
    lines = [[c.strip() for c in l.split("|")] for l in pg.splitlines() if l.count("|") >= 2]
    head = next((l for l in lines if l[0].startswith("query")), None)
    stops = [l for l in lines if head and len(l) == len(head) and not l[0].startswith(("query", "-"))]
    tps = [l for l in lines if len(l) == 3 and l[0] not in ("server",) and not l[0].startswith("-")]
    if head and stops:
        for l in stops:
            if l[0].startswith("pg_sleep") or l[1] == "off":
                row(f"6. PostgreSQL: client death to backend exit, {l[0].split(' (')[0]}, check interval {l[1]}",
                    "report", "; ".join(f"{h}: " + (v.replace(" (", " ms (", 1) if " (" in v else v + " ms")
                              for h, v in zip(head[2:], l[2:])), "—")
        if tps:
            row("6. PostgreSQL: pgbench -S TPS (4 clients)", "report",
                "; ".join(f"{a}, check interval {b}: {t}" for a, b, t in tps), "—")
    else:
        row("6. PostgreSQL", "report", pg.strip().splitlines()[-1] if pg.strip() else "see docs/servers.md", "—")
    not_yet("6. PostgreSQL", "report")

    # 7. scale
    sc = {s: json.load(open(f"{work}/scale.{s}.json")) for s in sides}
    res["scale"] = sc
    pl = sc["plain"]
    for s in measured:
        x = sc[s]
        n = x["connections"]
        ok = x["cancelled"] == n and x["lost"] == 0 and x["spurious"] == 0
        row(f"7. Scale: {n} tracked connections, {n} disconnects in {x['storm_close_s']:.2f} s ({s})",
            "all cancelled, none lost, none spurious",
            f"{x['cancelled']} cancelled, {x['lost']} lost, {x['spurious']} spurious "
            f"(of {x['kept_open']} kept open); all back in {x['all_returned_s']:.2f} s", ok)
        per = ((x["rss_loaded_kb"] - x["rss_idle_kb"]) - (pl["rss_loaded_kb"] - pl["rss_idle_kb"])) * 1024 / n
        x["bytes_per_tracked_connection"] = per
        row(f"7. Scale: memory per tracked connection ({s})", "report",
            f"{per:.0f} bytes (RSS growth with the shim minus without, / {n})", "—")
        row(f"7. Scale: watcher CPU during the storm ({s})", "report",
            f"{x['watcher_cpu_s']:.2f} s for {n} disconnects", "—")
    not_yet("7. Scale", "all cancelled, none lost, none spurious")

    # 8. start-up
    t, rss = {}, {}
    for line in open(f"{work}/startup.tsv"):
        kind, name, v = line.rstrip("\n").split("\t")
        if v.strip().isdigit() or kind == "time":
            (t if kind == "time" else rss).setdefault(name, []).append(float(v))
    res["startup"] = {"time_s": {k: med(v) for k, v in t.items()}, "max_rss_kb": {k: med(v) for k, v in rss.items()}}
    with open(f"{out}/startup.dat", "w") as f:
        f.write("program " + " ".join(sides) + "\n")
        for prog in ("python", "make"):
            f.write(f"\"{'python3 -c pass' if prog == 'python' else 'make -B (7 files)'}\" "
                    + " ".join(f"{1000 * med(t[f'{prog}:{s}']):.1f}" for s in sides) + "\n")
    for prog, label in (("python", "python3 -c pass"), ("make", "make -B of a 7-file tree")):
        for s in measured:
            a, b = med(t[f"{prog}:plain"]), med(t[f"{prog}:{s}"])
            ra, rb = med(rss.get(f"{prog}:plain", [])), med(rss.get(f"{prog}:{s}", []))
            row(f"8. Cost of doing nothing: {label} ({s})", "report",
                f"{1000 * b:.1f} ms vs {1000 * a:.1f} ms ({100 * (b / a - 1):+.1f}%); max RSS {rb:.0f} vs {ra:.0f} kB "
                f"({rb - ra:+.0f} kB)", "—")

    res["table"] = [dict(zip(("figure", "target", "measured", "met"), r)) for r in rows]
    with open(f"{out}/results.json", "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    with open(f"{out}/results.md", "w") as f:
        f.write(f"Measured {meta['date']} by `bench/run{' --quick' if meta['quick'] else ''}` on {meta['nproc']} cores, "
                f"kernel {meta['kernel']}, commit {meta['commit']}; load average at start {meta['loadavg_start']}, "
                f"at end {meta['loadavg_end']}. Modes measured: {' '.join(measured)}"
                + (f"; not in the shim yet: {' '.join(missing)}" if missing else "") + ".\n\n")
        f.write("| figure | target | measured | met? |\n|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |\n")
        if "query" in pg:
            f.write("\nPostgreSQL (bench/pg_time_to_stop.py, one run):\n\n```\n" + pg.strip() + "\n```\n")


if __name__ == "__main__":
    main()
