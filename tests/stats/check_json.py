"""Checks `cancelctl stats --json` output (stdin) against the fields that
docs/stats.md documents: every documented field is present, with its type,
in every object. Exit 0 if so; else the problems on stderr and exit 1.

    check_json.py DOCS_STATS_MD [EXPECTED_PID...]"""
import json
import re
import sys

doc = open(sys.argv[1]).read()
section = doc.split("## JSON fields", 1)[1].split("\n## ", 1)[0]
fields = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, re.M)
if len(fields) < 20:
    sys.exit(f"only {len(fields)} fields found in the documentation")

data = json.load(sys.stdin)
problems = []
if not isinstance(data, list):
    sys.exit("the output is not a JSON array")
TYPES = {"integer": int, "string": str, "array": list, "null": type(None)}


def lookup(obj, path):
    """Values at a dotted path; 'buckets[]' walks every element."""
    values = [obj]
    for part in path.split("."):
        nxt = []
        for v in values:
            if part.endswith("[]"):
                arr = v.get(part[:-2]) if isinstance(v, dict) else None
                if not isinstance(arr, list):
                    return None
                nxt.extend(arr)
            elif isinstance(v, dict) and part in v:
                nxt.append(v[part])
            else:
                return None
        values = nxt
    return values


for obj in data:
    for path, typ in fields:
        allowed = tuple(TYPES[t] for t in re.findall(r"integer|string|array|null", typ))
        values = lookup(obj, path)
        if values is None:
            problems.append(f"pid {obj.get('pid')}: no field {path}")
            continue
        for v in values:
            if not isinstance(v, allowed) or isinstance(v, bool):
                problems.append(f"pid {obj.get('pid')}: {path} is {v!r}, documented as {typ.strip()}")
pids = {str(o.get("pid")) for o in data}
for pid in sys.argv[2:]:
    if pid not in pids:
        problems.append(f"no object for pid {pid}")
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
