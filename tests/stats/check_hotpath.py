"""The statistics must cost nothing on the hot path. Disassembles
libcancelshim.so and checks that the fast path of each hot wrapper (the
function's main body; the slow path lives out of line in NAME.cold or in
cs_io_route) has no locked instruction, no call, and no reference to the
counters — while the library as a whole does reference them, so the check
cannot pass by not seeing them.

    check_hotpath.py LIBCANCELSHIM_SO

Exit 0 if so, else the offending instructions on stderr and exit 1."""
import re
import subprocess
import sys

HOT = ["read", "write", "readv", "writev", "pread64", "recv", "recvfrom", "send", "sendto",
       "poll", "epoll_wait", "nanosleep"]
COUNTERS = ("<cs_stats_where>", "<private_counters>")

dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", sys.argv[1]],
                     capture_output=True, text=True, check=True).stdout
functions, name = {}, None
for line in dis.splitlines():
    m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
    if m:
        name = m.group(1)
        functions[name] = []
    elif name and line.strip():
        functions[name].append(line.split(":", 1)[-1].strip())

problems = []
for f in HOT:
    body = functions.get(f)
    if not body:
        problems.append(f"{f}: not found in the library")
        continue
    for insn in body:
        if insn.startswith("lock") or insn.startswith("call") or any(c in insn for c in COUNTERS):
            problems.append(f"{f}: {insn}")
    print(f"{f}: {len(body)} instructions, no lock, no call, no counter")

users = sorted(n for n, body in functions.items() if any(c in i for i in body for c in COUNTERS))
if not users:
    problems.append("no function references the counters: is the library stripped?")
else:
    print("counters referenced by:", ", ".join(users))
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
