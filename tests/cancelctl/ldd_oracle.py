#!/usr/bin/python3
"""Independent oracle for the library search of `cancelctl check`: asks the
real loader (LD_TRACE_LOADED_OBJECTS, what ldd does) where it finds each library of the
program in REPORT.json, in this environment, and compares with the report's
"libraries". Usage: ldd_oracle.py REPORT.json -> "OK" (exit 0) or the
differences (exit 1)."""
import json
import os
import re
import subprocess
import sys

LOADER = "/lib64/ld-linux-x86-64.so.2"


def main():
    report = json.load(open(sys.argv[1]))
    # What ldd does: with LD_TRACE_LOADED_OBJECTS the loader lists every
    # library (or "not found") instead of running the program.
    env = dict(os.environ, LD_TRACE_LOADED_OBJECTS="1")
    out = subprocess.run([LOADER, report["path"]], capture_output=True, text=True, env=env)
    expected = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (not found|\S+)", line)
        if m:
            name, where = m.groups()
            expected[name] = None if where == "not found" else os.path.realpath(where)
    got = {lib["name"]: lib["path"] and os.path.realpath(lib["path"])
           for lib in report["libraries"] if not lib["name"].startswith("ld-linux")}
    if got == expected:
        print("OK")
        return 0
    print("ld.so:  ", expected)
    print("report:      ", got)
    print(out.stdout, out.stderr)
    return 1


sys.exit(main())
