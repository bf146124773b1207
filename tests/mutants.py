#!/usr/bin/env python
"""The one-line mistakes the suite must catch, tried again. Each test file's docstring lists the mistakes
it kills, a line each:

    - FILE: `GIVEN` -> `MISTAKE` | TEST

GIVEN is code that stands exactly once in FILE (a `\\n` in GIVEN or MISTAKE is a line break). For each
line this script copies the checkout to a scratch folder, writes MISTAKE over GIVEN there, and runs TEST
(a test of the same test file): the mistake is caught when the test fails. With --suite it runs the
whole suite on each mistake instead (slow).

    python tests/mutants.py [-k TEXT] [--suite]     # exit 1 when a mistake survives
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
LINE = re.compile(r"^\s*- (\S+): `(.+?)` -> `(.*)` \| (\w+)\s*$")


class Mutant(NamedTuple):
    test_file: str  # tests/test_*.py, whose docstring lists the mistake
    file: str  # the file it is made in, from the repository root
    given: str
    mistake: str
    test: str


def mutants():
    """Every mistake listed in the test files' docstrings, in file order."""
    found = []
    for path in sorted(glob.glob(os.path.join(TESTS, "test_*.py"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        doc = re.match(r'\s*"""(.*?)"""', text, re.S)
        for line in (doc.group(1).splitlines() if doc else []):
            if m := LINE.match(line):
                file, given, mistake, test = m.groups()
                found.append(Mutant(os.path.relpath(path, ROOT), file, given.replace("\\n", "\n"),
                                    mistake.replace("\\n", "\n"), test))
    return found


def scratch_copy():
    """The checkout's files (tracked, and untracked but not ignored) and its data/ in a temp folder,
    with ../shared linked beside it as beside the checkout (the swap tests read the skeleton there)."""
    folder = os.path.join(tempfile.mkdtemp(prefix="mutants-"), "checkout")
    os.makedirs(folder)
    shared = os.path.join(os.path.dirname(ROOT), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(os.path.dirname(folder), "shared"))
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files + [os.path.join("data", n) for n in os.listdir(os.path.join(ROOT, "data"))]:
        src, dst = os.path.join(ROOT, name), os.path.join(folder, name)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
    return folder


def try_mutant(mutant, folder, suite=False):
    """'caught', 'SURVIVED' or 'STALE' (GIVEN is not in FILE exactly once), and pytest's last line."""
    path = os.path.join(folder, mutant.file)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    if original.count(mutant.given) != 1:
        return "STALE", f"found {original.count(mutant.given)} times in {mutant.file}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(original.replace(mutant.given, mutant.mistake))
    target = ["tests"] if suite else [f"{mutant.test_file}::{mutant.test}"]
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               *target], cwd=folder, capture_output=True, text=True, timeout=900)
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
    lines = proc.stdout.strip().splitlines()
    return ("caught" if proc.returncode == 1 else "SURVIVED" if proc.returncode == 0
            else f"ERROR {proc.returncode}"), lines[-1] if lines else proc.stderr[-200:]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", default="", help="only the mistakes whose line contains this text")
    p.add_argument("--suite", action="store_true", help="run the whole suite on each mistake")
    args = p.parse_args()
    chosen = [m for m in mutants() if args.k in " ".join(m)]
    folder, tally = scratch_copy(), {}
    try:
        for m in chosen:
            t0 = time.time()
            verdict, last = try_mutant(m, folder, args.suite)
            tally[verdict] = tally.get(verdict, 0) + 1
            given, mistake = (s.replace("\n", "\\n") for s in (m.given, m.mistake))
            print(f"{verdict:8} {m.file}: `{given}` -> `{mistake}` | {m.test} "
                  f"({time.time() - t0:.0f} s; {last})", flush=True)
    finally:
        shutil.rmtree(os.path.dirname(folder))  # the link to ../shared is removed, not followed
    print(f"{len(chosen)} mistakes: " + ", ".join(f"{n} {v}" for v, n in sorted(tally.items())))
    return 0 if set(tally) <= {"caught"} else 1


if __name__ == "__main__":
    sys.exit(main())
