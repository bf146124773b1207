#!/usr/bin/env python
"""Compile report/report.pdf from report/report.typ, reading results/*.json, after checking that
every input is there and complete; at most 10 pages, the appendix starting by page 7.

    python report/build.py [--output report/report.pdf]   # warns while the group files are empty
    python report/build.py --final                        # refuses to build until they are filled
"""
import argparse
import os
import sys

# the repository's modules
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reporting  # noqa: E402  (report/reporting.py, beside this file)
from utils import run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=os.path.join(reporting.ROOT, "report", "report.pdf"),
                   help="the PDF to write")
    p.add_argument("--no_readme", action="store_true",
                   help="leave README.md's generated parts as they are")
    p.add_argument("--final", action="store_true", help="refuse to build while report/group.txt or "
                   "report/contributions.txt still holds its placeholder")
    args = p.parse_args(argv)
    reporting.build(args.output, final=args.final)
    if not args.no_readme:
        reporting.update_readme()
    return 0


if __name__ == "__main__":
    run(main)
