#!/usr/bin/env python3
"""Adds up the test cases of meson test logs (testlog.json).

Each Criterion executable reports "Synthesis: Tested: N | Passing: N |
Failing: N | Crashing: N"; a test that printed none (it crashed before the
end, or is not a Criterion test) counts as one case, passing or failing as
meson saw it. Exits 1 when anything failed or nothing ran at all. The failed tests are
named last, with their failing lines, because CI shows a run's tail."""
import json
import re
import sys

SYNTHESIS = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")

tested = passing = failing = crashing = 0
failed = []  # (test name, its lines that say what failed)
leaked = []  # (test name, what tests/helpers/test-reaper stopped after it)
FAILING_LINE = re.compile(r"\[(FAIL|----)\]|Assertion|Crash|Timeout|signal|error", re.IGNORECASE)
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            text = (entry.get("stdout") or "") + (entry.get("stderr") or "")
            found = SYNTHESIS.findall(text)
            ok = entry.get("result") in ("OK", "EXPECTEDFAIL")
            if found:
                t, p, f_, c = map(int, found[-1])
                tested, passing, failing, crashing = tested + t, passing + p, failing + f_, crashing + c
                if not ok and f_ + c == 0:
                    failing += 1  # the executable failed after its tests (a leak, a sanitizer report)
                    tested += 1
            else:
                tested += 1
                passing += ok
                failing += not ok
            leftovers = [l for l in text.splitlines() if l.startswith("test-reaper:")]
            if leftovers:
                leaked.append((entry.get("name"), leftovers[:5]))
            if not ok:
                lines = [l for l in text.splitlines() if FAILING_LINE.search(l)]
                failed.append((f"{entry.get('name')} ({entry.get('result')}, {path})", lines[-12:]))

for name, lines in leaked:
    print(f"LEFT PROCESSES RUNNING: {name}")
    for l in lines:
        print(f"    {l[:300]}")
for name, lines in failed:
    print(f"FAILED: {name}")
    for l in lines:
        print(f"    {l[:300]}")
print(f"Synthesis: Tested: {tested} | Passing: {passing} | Failing: {failing} | Crashing: {crashing}")
print(f"{passing} passed, {failing + crashing} failed")
sys.exit(0 if tested and failing + crashing == 0 else 1)
