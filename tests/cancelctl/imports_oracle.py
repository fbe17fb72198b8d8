#!/usr/bin/python3
"""Independent oracle for `cancelctl check --json`'s "imports": recomputes
them with binutils' nm from the shim's defined dynamic functions and the
undefined dynamic symbols of the program and of each library the report
lists, and compares. Usage: imports_oracle.py SHIM REPORT.json
Prints "OK" (exit 0) or the differences (exit 1)."""
import json
import os
import subprocess
import sys


def nm(path, *args):
    out = subprocess.run(["nm", "-D", *args, path], capture_output=True, text=True)
    names = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1].split("@")[0]
        names[name] = kind
    return names


def main():
    shim, report = sys.argv[1], json.load(open(sys.argv[2]))
    exported = {n for n, k in nm(shim, "--defined-only").items() if k in ("T", "W", "i")}
    objects = [(os.path.basename(report["path"]), report["path"])]
    objects += [(lib["name"], lib["path"]) for lib in report["libraries"] if lib["path"]]
    expected = {}
    for name, path in objects:
        for sym in nm(path, "--undefined-only"):
            if sym in exported:
                expected.setdefault(sym, []).append(name)
    got = {imp["name"]: imp["from"] for imp in report["imports"]}
    if {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected.items()}:
        print("OK")
        return 0
    print("expected", expected)
    print("got     ", got)
    return 1


sys.exit(main())
