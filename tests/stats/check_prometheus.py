"""Checks a Prometheus text exposition (format 0.0.4) on stdin, the way a
scraper would read it, plus cancelshim's own rules. Exit 0 if it is good;
otherwise one line per problem on stderr and exit 1.

    check_prometheus.py [EXPECTED_PID...]"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)$")
LABEL_RE = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')

problems = []
types, helps, seen_families, samples = {}, {}, [], []
current = None
for n, line in enumerate(sys.stdin.read().splitlines(), 1):
    if not line:
        continue
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        parts = line.split(" ", 3)
        if len(parts) < 4:
            problems.append(f"line {n}: short {parts[1]} line")
            continue
        name = parts[2]
        if parts[1] == "TYPE":
            if parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                problems.append(f"line {n}: bad type {parts[3]}")
            if name in types:
                problems.append(f"line {n}: second TYPE for {name}")
            types[name] = parts[3]
        else:
            helps[name] = parts[3]
        if name in seen_families and current != name:
            problems.append(f"line {n}: family {name} is not contiguous")
        if current != name:
            seen_families.append(name)
        current = name
        continue
    if line.startswith("#"):
        continue
    m = SAMPLE.match(line)
    if not m:
        problems.append(f"line {n}: not a sample: {line!r}")
        continue
    name, labels, value = m.group(1), m.group(2) or "", m.group(3)
    try:
        v = float(value)
    except ValueError:
        problems.append(f"line {n}: bad value {value!r}")
        continue
    family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in types else name
    if family not in types:
        problems.append(f"line {n}: {name} has no TYPE")
    elif family != current:
        problems.append(f"line {n}: {name} outside its family's block")
    if not name.startswith("cancelshim_"):
        problems.append(f"line {n}: {name} does not start with cancelshim_")
    if types.get(family) == "counter" and not name.endswith("_total"):
        problems.append(f"line {n}: counter {name} should end in _total")
    samples.append((family, name, dict(LABEL_RE.findall(labels)), v))

for family, t in types.items():
    if family not in helps:
        problems.append(f"{family}: no HELP")

# Histograms: cumulative buckets, increasing le, +Inf == _count, a _sum.
for family, t in types.items():
    if t != "histogram":
        continue
    series = {}
    for fam, name, labels, v in samples:
        if fam != family:
            continue
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            s["buckets"].append((float(labels["le"]) if labels["le"] != "+Inf" else math.inf, v))
        elif name.endswith("_sum"):
            s["sum"] = v
        elif name.endswith("_count"):
            s["count"] = v
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            problems.append(f"{family}{key}: le not increasing")
        if counts != sorted(counts):
            problems.append(f"{family}{key}: buckets not cumulative")
        if not les or les[-1] != math.inf:
            problems.append(f"{family}{key}: no +Inf bucket")
        elif s["count"] != counts[-1]:
            problems.append(f"{family}{key}: _count {s['count']} != +Inf bucket {counts[-1]}")
        if s["sum"] is None:
            problems.append(f"{family}{key}: no _sum")

pids = {labels.get("pid") for _, _, labels, _ in samples}
for pid in sys.argv[1:]:
    if pid not in pids:
        problems.append(f"no sample for pid {pid}")

for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
