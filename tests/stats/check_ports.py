"""Checks the per-listener rows of one process in `cancelctl stats --json`
or `--prometheus` output (stdin): exactly the rows given, in that order for
JSON, with those counts. Exit 0 if so; else the problems on stderr, exit 1.

    check_ports.py json|prometheus PID LABEL=ACCEPTED,DISCONNECTS,CANCELS..."""
import json
import re
import sys

fmt, pid = sys.argv[1], sys.argv[2]
want = []
for arg in sys.argv[3:]:
    label, counts = arg.rsplit("=", 1)
    want.append((label, tuple(int(c) for c in counts.split(","))))
text = sys.stdin.read()
got = []
if fmt == "json":
    for obj in json.loads(text):
        if str(obj.get("pid")) == pid:
            got = [(p["port"], (p["connections_accepted"], p["disconnects"], p["cancels"]))
                   for p in obj["ports"]]
else:
    LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
    SAMPLE = re.compile(r"^(cancelshim_port_\w+_total)\{(.*)\} (\d+)$")
    names = ["cancelshim_port_connections_accepted_total", "cancelshim_port_disconnects_total",
             "cancelshim_port_cancels_total"]
    rows = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = {k: re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
                  for k, v in LABEL.findall(m.group(2))}
        if labels.get("pid") != pid:
            continue
        if m.group(1) not in names:
            sys.exit(f"unknown family {m.group(1)}")
        rows.setdefault(labels["port"], [None] * 3)[names.index(m.group(1))] = int(m.group(3))
    got = [(label, tuple(c)) for label, c in rows.items()]
if got != want:
    print(f"per-listener rows of pid {pid} ({fmt}):\n got  {got}\n want {want}\n{text}", file=sys.stderr)
    sys.exit(1)
