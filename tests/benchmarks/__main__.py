"""``python -m tests.benchmarks [--rounds N] [name-filter ...]``: run every bench_*.py module."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path

from tests import services
from tests.benchmarks.harness import ROOT, run_scenarios, write_report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0, help="per variant run, seconds")
    parser.add_argument("--output", default=str(ROOT / "bench-results.md"))
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other scenarios of an existing report and replace only those run now "
        "(the default when modules or scenarios are selected)",
    )
    parser.add_argument("only", nargs="*", help="run only modules whose name contains one of these")
    args = parser.parse_args(argv)

    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if any(word in n for word in args.only)]
    scenarios = []
    for name in names:
        scenarios.extend(importlib.import_module(f"tests.benchmarks.{name}").SCENARIOS)
    with services.kafka_broker() as broker:
        os.environ[services.KAFKA_BOOTSTRAP_ENV] = broker.bootstrap
        results = run_scenarios(scenarios, args.rounds, args.timeout)
    output = Path(args.output)
    partial = bool(args.only) or any(
        key.startswith("BENCH_") and key.endswith("_ONLY") and value
        for key, value in os.environ.items()
    )
    if (args.update or partial) and output.with_suffix(".json").exists():
        # A scenario keeps its place; one run with other sizes ("... (100000 rows)") replaces it.
        fresh = {_base_name(r["scenario"]): r for r in results}
        kept = json.loads(output.with_suffix(".json").read_text())
        results = [fresh.pop(_base_name(r["scenario"]), r) for r in kept] + list(fresh.values())
    write_report(results, output)
    print(f"wrote {args.output}")
    return 0


def _base_name(scenario: str) -> str:
    return scenario.split(" (")[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
