"""botkit's benchmarks in one command: `python -m bench [--quick] [--output FILE] [CASE …]`.

Prints one table per case and writes every figure to a JSON file. Timings on a
shared machine are noisy: compare ratios measured in the same run, not absolute
times across runs. No test asserts a speed; the targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

CASES = ("client", "pipeline", "burst", "web", "workers", "retrieval", "store", "startup")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "cases",
        nargs="*",
        choices=[*CASES, []],
        metavar="CASE",
        help=f"which cases to run (default: all of {', '.join(CASES)})",
    )
    parser.add_argument("--quick", action="store_true", help="every case, small and fast")
    parser.add_argument("--output", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()
    results = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cases": {},
    }
    for name in args.cases or CASES:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        table = module.run(args.quick)
        table.notes.append(f"({time.perf_counter() - started:.1f} s)")
        print(table.render(), end="\n\n", flush=True)
        results["cases"][name] = table.as_json()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
