"""``chaos-results.md`` and its throughput plot."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.chaos.checker import PIPELINES, Verdict
from tests.chaos.faults import Fault

Sample = tuple[float, dict[str, tuple[int, int]]]  # (seconds since start, pipeline -> counts)


def recovery_times(faults: list[Fault], samples: list[Sample], start: float) -> list[float | None]:
    """Per fault: seconds from its end until everything committed by then was delivered."""
    times: list[float | None] = []
    for fault in faults:
        end = fault.ended - start
        after = [s for s in samples if s[0] >= end]
        if not after:
            times.append(None)
            continue
        target = {p: after[0][1][p][0] for p in PIPELINES}
        done = next(
            (t for t, counts in after if all(counts[p][1] >= target[p] for p in PIPELINES)), None
        )
        times.append(None if done is None else max(0.0, done - end))
    return times


def plot(samples: list[Sample], faults: list[Fault], start: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PIPELINES), 1, figsize=(13, 9), sharex=True)
    for ax, pipeline in zip(axes, PIPELINES, strict=True):
        xs, ys = [], []
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t1 - t0 > 3:  # no sample while the database was away: a gap, not a slope
                xs.append(t0 + 0.5)
                ys.append(float("nan"))
            elif t1 > t0:
                xs.append(t1)
                ys.append((c1[pipeline][1] - c0[pipeline][1]) / (t1 - t0))
        smooth = []
        for i in range(len(ys)):
            window = [y for y in ys[max(0, i - 4) : i + 1] if y == y]  # NaN != NaN
            smooth.append(statistics.fmean(window) if window and ys[i] == ys[i] else float("nan"))
        ax.plot(xs, smooth, color="tab:blue", linewidth=1.1)
        ax.set_ylabel(f"{pipeline}\napplied/s", fontsize=9)
        ax.set_ylim(bottom=0)
        for fault in faults:
            x0, x1 = fault.started - start, fault.ended - start
            color = "tab:red" if fault.kind.startswith(("kill9", "term")) else "tab:gray"
            ax.axvspan(x0, max(x1, x0 + 0.4), color=color, alpha=0.3, linewidth=0)
    top = axes[0].get_ylim()[1]
    for fault in faults:
        axes[0].text(fault.started - start, top, fault.kind, rotation=90, fontsize=6, va="bottom")
    axes[-1].set_xlabel(
        "seconds since the load started (red: a process signalled; grey: a service fault)\n"
        "messages applied per second, 5 s mean; the event store's follower is a periodic "
        "sync_followers, hence its bursts"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    path: Path,
    *,
    seed: int,
    duration: float,
    faults: list[Fault],
    recovery: list[float | None],
    verdict: Verdict,
    workers: dict[str, Any],
    machine: str,
    plot_name: str,
    command: str,
    drained: str,
) -> None:
    by_kind: dict[str, list[float | None]] = defaultdict(list)
    for fault, took in zip(faults, recovery, strict=True):
        by_kind[fault.kind].append(took)
    lines = [
        "# Chaos soak results",
        "",
        f"Written by `{command}`. Replay with `--seed {seed}`.",
        "",
        f"- seed: **{seed}**; load and faults for {duration:.0f} s, then faults stopped and "
        f"workers drained (caught up {drained})",
        f"- machine: {machine}",
        f"- verdict: **{'PASS' if not verdict.failures else 'FAIL'}**"
        + ("" if not verdict.failures else " — " + "; ".join(verdict.failures)),
        "",
        "## Load and what reached its destination",
        "",
        "| package | messages | lost | duplicates delivered | duplicates applied | garbage sent | garbage dead-lettered with a reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in PIPELINES:
        f = verdict.figures.get(p, {})
        lines.append(
            f"| {p} | {f.get('messages', '')} | {f.get('lost', '')} | "
            f"{f.get('duplicates delivered', '')} | {f.get('duplicates applied', '')} | "
            f"{f.get('garbage sent', '—')} | {f.get('garbage dead-lettered', '—')} |"
        )
    lines += [
        "",
        "Messages: outbox rows committed with their model; CQRS changes (sum of `cqrs_revision + 1` "
        "over the masters); Kafka messages produced after their transaction committed (read back "
        "from the topic); events of the event-sourced application (its last notification id).",
        "",
        "## Faults injected, by kind, and recovery",
        "",
        "Recovery: seconds from the end of a fault until every change committed by then had "
        "reached its destination in all four packages (sampled once a second).",
        "",
        "| fault | injected | recovery median (s) | recovery max (s) |",
        "|---|---|---|---|",
    ]
    for kind in sorted(by_kind):
        known = [t for t in by_kind[kind] if t is not None]
        med = f"{statistics.median(known):.1f}" if known else "—"
        top = f"{max(known):.1f}" if known else "—"
        lines.append(f"| {kind} | {len(by_kind[kind])} | {med} | {top} |")
    known = [t for t in recovery if t is not None]
    if known:
        lines.append(
            f"| **all** | {len(faults)} | {statistics.median(known):.1f} | {max(known):.1f} |"
        )
    lines += [
        "",
        f"![throughput over time, faults marked]({plot_name})",
        "",
        "## Workers",
        "",
        "| worker | starts | exits asked for | exits nobody asked for | stopped by SIGTERM at the end |",
        "|---|---|---|---|---|",
    ]
    for name, w in workers.items():
        asked = Counter(cause for _, _, cause in w["exits"] if cause)
        final = "—" if w["final"] is None else f"exit {w['final']}"
        lines.append(
            f"| {name} | {w['starts']} | "
            f"{', '.join(f'{k} ×{v}' for k, v in sorted(asked.items())) or '—'} | "
            f"{len(w['unexpected'])} | {final} |"
        )
    lines += [
        "",
        "## Schedule",
        "",
        "| at (s) | fault | took (s) | recovery (s) | note |",
        "|---|---|---|---|---|",
    ]
    for fault, took in zip(faults, recovery, strict=True):
        lines.append(
            f"| {fault.at} | {fault.kind} | {fault.ended - fault.started:.1f} | "
            f"{'—' if took is None else f'{took:.1f}'} | {fault.note} |"
        )
    path.write_text("\n".join(lines) + "\n")
    # the figures again, for a summary over several runs
    known = [t for t in recovery if t is not None]
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "seed": seed,
                "duration": duration,
                "machine": machine,
                "drained": drained,
                "verdict": "PASS" if not verdict.failures else "FAIL",
                "failures": verdict.failures,
                "faults": len(faults),
                "faults by kind": {k: len(v) for k, v in sorted(by_kind.items())},
                "recovery median": statistics.median(known) if known else None,
                "recovery max": max(known) if known else None,
                "figures": verdict.figures,
            },
            indent=1,
        )
        + "\n"
    )
