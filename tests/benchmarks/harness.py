"""Benchmark harness: every variant of a scenario runs in the same session, several rounds,
interleaved, each in a fresh subprocess; medians and ratios go to bench-results.md / .json.

A benchmark module ``tests/benchmarks/bench_<topic>.py`` defines ``SCENARIOS``, a list of
:class:`Scenario`. A variant is a command (normally ``python <this module> <variant-key>``)
whose last stdout line is JSON ``{"ops": <count>, "seconds": <elapsed>}`` (and optionally
``"cpu": <process CPU seconds>``); the harness turns it into ops/s and CPU µs per op. Variants whose ``requirements`` are set run in their own virtualenv
(``tests/refenv.py``: keyed by their contents, built once and reused): that is how the reference libraries
are installed side by side without touching the project's environment.

The harness starts one Kafka broker for the whole run and exports its address as
``MESSAGING_KAFKA_BOOTSTRAP``; every other service comes from tests/services.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import refenv

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Variant:
    label: (
        str  # shown in the table: "django-messaging", "django-kafka 0.5.13", "raw confluent-kafka"
    )
    argv: list[str]  # arguments after the python executable
    requirements: list[str] = field(default_factory=list)  # empty: the project's own environment
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """``ours / other >= at_least`` is the requirement (``at_least=0.5`` for "half of raw")."""

    other: str
    at_least: float


@dataclass
class Scenario:
    name: str
    unit: str  # "msgs/s", "rows/s", ...
    ours: str  # label of the project's variant
    variants: list[Variant]
    targets: list[Target] = field(default_factory=list)
    note: str = ""


def script(module_file: str, key: str, *extra: str) -> list[str]:
    return [module_file, key, *extra]


def python_for(requirements: list[str]) -> str:
    return refenv.reference_python(requirements) if requirements else sys.executable


def run_variant(variant: Variant, timeout: float) -> float:
    return run_variant_with_cpu(variant, timeout)[0]


def run_variant_with_cpu(variant: Variant, timeout: float) -> tuple[float, float | None]:
    """(ops/s, process CPU µs per op or None)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **variant.env}
    done = subprocess.run(
        [python_for(variant.requirements), *variant.argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{variant.label}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1])
    ops = float(result["ops"])
    cpu = result.get("cpu")
    return ops / float(result["seconds"]), (float(cpu) * 1e6 / ops if cpu is not None else None)


def run_scenarios(scenarios: list[Scenario], rounds: int, timeout: float) -> list[dict]:
    results = []
    for scenario in scenarios:
        print(f"-- {scenario.name}", flush=True)
        samples: dict[str, list[float]] = {v.label: [] for v in scenario.variants}
        cpu_samples: dict[str, list[float]] = {v.label: [] for v in scenario.variants}
        errors: dict[str, str] = {}
        for round_no in range(rounds):
            order = (
                scenario.variants[round_no % len(scenario.variants) :]
                + scenario.variants[: round_no % len(scenario.variants)]
            )
            for variant in order:
                if variant.label in errors:
                    continue
                try:
                    rate, cpu = run_variant_with_cpu(variant, timeout)
                    samples[variant.label].append(rate)
                    if cpu is not None:
                        cpu_samples[variant.label].append(cpu)
                except Exception as exc:  # a broken reference run is reported, not fatal
                    errors[variant.label] = str(exc)[-1500:]
                    print(f"   {variant.label}: FAILED\n{errors[variant.label]}", flush=True)
        medians = {k: statistics.median(v) for k, v in samples.items() if v}
        cpu_us = {k: statistics.median(v) for k, v in cpu_samples.items() if v}
        ours = medians.get(scenario.ours)
        ratios = {k: (ours / v if ours and v else None) for k, v in medians.items()}
        checks = []
        for target in scenario.targets:
            ratio = ratios.get(target.other)
            checks.append(
                {
                    "other": target.other,
                    "at_least": target.at_least,
                    "ratio": ratio,
                    "met": ratio is not None and ratio >= target.at_least,
                }
            )
        for label, value in medians.items():
            cpu = f"  {cpu_us[label]:8.2f} µs CPU/op" if label in cpu_us else ""
            print(f"   {label:40s} {value:14,.0f} {scenario.unit}{cpu}", flush=True)
        results.append(
            {
                "scenario": scenario.name,
                "unit": scenario.unit,
                "ours": scenario.ours,
                "rounds": rounds,
                "medians": medians,
                "cpu_us_per_op": cpu_us,
                "samples": samples,
                "ratios": ratios,
                "targets": checks,
                "errors": errors,
                "note": scenario.note,
            }
        )
    return results


def write_report(results: list[dict], path: Path) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `nox -s bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"on {os.cpu_count()} CPUs. Each variant ran in its own process, rounds interleaved; the "
        "numbers are medians. *ratio* is django-messaging's median divided by that variant's "
        "(above 1: django-messaging is faster).",
        "",
    ]
    for result in results:
        lines += [f"## {result['scenario']}", ""]
        if result["note"]:
            lines += [result["note"], ""]
        cpu_us = result.get("cpu_us_per_op") or {}
        if cpu_us:
            lines += [
                f"| variant | median {result['unit']} | ratio | CPU µs/op | rounds |",
                "|---|---:|---:|---:|---:|",
            ]
        else:
            lines += [
                f"| variant | median {result['unit']} | ratio | rounds |",
                "|---|---:|---:|---:|",
            ]
        for label, value in result["medians"].items():
            ratio = result["ratios"].get(label)
            shown = "—" if label == result["ours"] else (f"{ratio:.2f}×" if ratio else "n/a")
            cpu = f" {cpu_us[label]:.2f} |" if label in cpu_us else (" |" if cpu_us else "")
            lines.append(
                f"| {label} | {value:,.0f} | {shown} |{cpu} {len(result['samples'][label])} |"
            )
        for label, error in result["errors"].items():
            lines.append(
                f"| {label} | failed: {error.splitlines()[-1][:120] if error else ''} | | |"
                + (" |" if cpu_us else "")
            )
        for check in result["targets"]:
            ratio = f"{check['ratio']:.2f}×" if check["ratio"] else "n/a"
            verdict = "met" if check["met"] else "NOT MET"
            lines.append("")
            lines.append(
                f"- target: ≥ {check['at_least']:.2g}× {check['other']}: measured {ratio} — **{verdict}**"
            )
        lines.append("")
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))


def emit(ops: int, seconds: float, cpu: float | None = None) -> None:
    """What a variant prints last; ``cpu``: the process CPU seconds (``time.process_time()``,
    every thread) spent over the same span."""
    result: dict[str, float] = {"ops": ops, "seconds": seconds}
    if cpu is not None:
        result["cpu"] = cpu
    print(json.dumps(result), flush=True)
