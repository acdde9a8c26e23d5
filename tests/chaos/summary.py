"""``python -m tests.chaos.summary RUN.md [RUN.md ...] --output chaos-results.md``: one report
of several soaks (each written by ``python -m tests.chaos --output RUN.md``, with its ``.json``
and ``.png`` beside it): a table of the runs, the faults by kind, then each run's own report.
The first run's plot becomes ``<output>.png``, the others ``<output>-seed<N>.png``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.chaos.checker import PIPELINES


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.summary", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="the chaos-results.md of each run")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = [(path, json.loads(path.with_suffix(".json").read_text())) for path in args.runs]
    out: Path = args.output
    plots = []
    for i, (path, figures) in enumerate(runs):
        name = out.with_suffix(".png").name if i == 0 else f"{out.stem}-seed{figures['seed']}.png"
        shutil.copyfile(path.with_suffix(".png"), out.parent / name)
        plots.append(name)
    out.write_text(render(runs, plots))
    return 0


def _cell(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def render(runs: list[tuple[Path, dict[str, Any]]], plots: list[str]) -> str:
    seeds = [str(f["seed"]) for _, f in runs]
    passed = sum(f["verdict"] == "PASS" for _, f in runs)
    lines = [
        "# Chaos soak results",
        "",
        f"{len(runs)} runs of `./dev chaos -- --seed N` (seeds {', '.join(seeds)}): "
        f"{passed} passed. Each run wrote its own report with `--output`; "
        f"`python -m tests.chaos.summary` put them together here. Replay one with `--seed N`.",
        "",
        "## The runs",
        "",
        "| seed | load, faults (s) | faults (kinds) | machine | recovery median / max (s) | "
        "caught up after the load | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, f in runs:
        lines.append(
            f"| {f['seed']} | {f['duration']:.0f} | {f['faults']} ({len(f['faults by kind'])}) | "
            f"{f['machine']} | {_cell(f['recovery median'])} / {_cell(f['recovery max'])} | "
            f"{f['drained']} | **{f['verdict']}** |"
        )
    lines += [
        "",
        "Per package: messages / lost / duplicates delivered / duplicates applied.",
        "",
        "| seed | " + " | ".join(PIPELINES) + " |",
        "|---|" + "---|" * len(PIPELINES),
    ]
    for _, f in runs:
        cells = []
        for p in PIPELINES:
            g = f["figures"].get(p, {})
            cells.append(
                " / ".join(
                    _cell(g.get(k))
                    for k in ("messages", "lost", "duplicates delivered", "duplicates applied")
                )
            )
        lines.append(f"| {f['seed']} | " + " | ".join(cells) + " |")
    kinds = sorted({k for _, f in runs for k in f["faults by kind"]})
    lines += [
        "",
        "Faults injected, by kind and run:",
        "",
        "| fault | " + " | ".join(f"seed {s}" for s in seeds) + " | all |",
        "|---|" + "---|" * (len(runs) + 1),
    ]
    for kind in kinds:
        counts = [f["faults by kind"].get(kind, 0) for _, f in runs]
        lines.append(f"| {kind} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    for (path, f), plot in zip(runs, plots, strict=True):
        body = path.read_text().splitlines()[1:]  # its own title
        body = [line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in body]
        body = [
            f"![throughput over time, faults marked]({plot})" if line.startswith("![") else line
            for line in body
        ]
        lines += ["", f"## Run with seed {f['seed']}", *body]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
