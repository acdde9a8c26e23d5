"""Benchmark harness: every variant of a scenario runs in the same session, several rounds,
interleaved, each in a fresh subprocess; medians and ratios go to bench-results.md / .json.

A benchmark module ``tests/benchmarks/bench_<topic>.py`` defines ``SCENARIOS``, a list of
:class:`Scenario`. A variant is a command (normally ``python <this module> <variant-key>``)
whose last stdout line is JSON ``{"ops": <count>, "seconds": <elapsed>}``, optionally with
``"cpu_seconds"`` (the process's CPU time in the same loop); the harness turns it into ops/s
and CPU µs per operation. Variants whose ``requirements`` are set run in their own virtualenv
(``tests/refenv.py``: keyed by their contents, built once and reused): that is how the reference libraries
are installed side by side without touching the project's environment. Before its first run,
each variant's environment gets bytecode for every module (:func:`compile_bytecode`), so a
process timed from its start pays what an installed project pays at start, not a compiler.

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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    """``ours / other >= at_least`` is the requirement (``at_least=0.5`` for "half of raw");
    ``at_most`` bounds it from above instead, for a variant that does more than ours and may
    only be that much slower (``at_most=1.15``: at most 15% more time per operation)."""

    other: str
    at_least: float = 0.0
    at_most: float | None = None


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


#: Interpreters whose environments have bytecode for every module (see compile_bytecode).
_COMPILED: set[str] = set()
_COMPILE = (
    "import compileall, sys, sysconfig\n"
    "paths = {sysconfig.get_paths()[k] for k in ('purelib', 'platlib')} | set(sys.argv[1:])\n"
    "for path in sorted(paths):\n"
    "    compileall.compile_dir(path, quiet=2, workers=0)\n"
)


def compile_bytecode(python: str) -> None:
    """Write bytecode for every module ``python``'s environment (and, for the project's own
    interpreter, this repository) holds, once per run and before any timing, as ``pip install``
    does for a user. Where ``PYTHONDONTWRITEBYTECODE`` is set (CI) and an environment was
    installed without bytecode (``uv`` writes none by default), each variant process would
    otherwise compile Django, psycopg and the rest from source at its start: 1-2 s of CPU
    here, paid by no installed project, which makes rows timed from process start measure
    the compiler."""
    if python in _COMPILED:
        return
    _COMPILED.add(python)
    ours = (
        [str(ROOT / d) for d in ("shared", "packages", "tests")] if python == sys.executable else []
    )
    subprocess.run([python, "-c", _COMPILE, *ours], check=True, timeout=900)


def run_variant(variant: Variant, timeout: float) -> tuple[float, float | None]:
    """Operations per second, and CPU microseconds per operation when the variant reports it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **variant.env}
    python = python_for(variant.requirements)
    compile_bytecode(python)
    done = subprocess.run(
        [python, *variant.argv],
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
    cpu = result.get("cpu_seconds")
    per_op = float(cpu) * 1e6 / float(result["ops"]) if cpu is not None else None
    return float(result["ops"]) / float(result["seconds"]), per_op


def run_scenarios(scenarios: list[Scenario], rounds: int, timeout: float) -> list[dict]:
    """``BENCH_VARIANTS=django-messaging`` runs only the variants whose label starts with one
    of these comma-separated words (the reference environments are then not needed)."""
    only = [w for w in os.environ.get("BENCH_VARIANTS", "").split(",") if w]
    results = []
    for scenario in scenarios:
        if only:
            kept = [v for v in scenario.variants if any(v.label.startswith(w) for w in only)]
            labels = {v.label for v in kept}
            targets = [t for t in scenario.targets if t.other in labels]
            scenario = replace(scenario, variants=kept, targets=targets)
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
                    rate, cpu = run_variant(variant, timeout)
                    samples[variant.label].append(rate)
                    if cpu is not None:
                        cpu_samples[variant.label].append(cpu)
                except Exception as exc:  # a broken reference run is reported, not fatal
                    errors[variant.label] = str(exc)[-1500:]
                    print(f"   {variant.label}: FAILED\n{errors[variant.label]}", flush=True)
        medians = {k: statistics.median(v) for k, v in samples.items() if v}
        cpu_medians = {k: statistics.median(v) for k, v in cpu_samples.items() if v}
        ours = medians.get(scenario.ours)
        ratios = {k: (ours / v if ours and v else None) for k, v in medians.items()}
        checks = []
        for target in scenario.targets:
            ratio = ratios.get(target.other)
            checks.append(
                {
                    "other": target.other,
                    "at_least": target.at_least,
                    "at_most": target.at_most,
                    "ratio": ratio,
                    "met": ratio is not None
                    and ratio >= target.at_least
                    and (target.at_most is None or ratio <= target.at_most),
                }
            )
        for label, value in medians.items():
            cpu = cpu_medians.get(label)
            shown = f"  {cpu:10,.0f} CPU µs/op" if cpu is not None else ""
            print(f"   {label:40s} {value:14,.0f} {scenario.unit}{shown}", flush=True)
        results.append(
            {
                "scenario": scenario.name,
                "unit": scenario.unit,
                "ours": scenario.ours,
                "rounds": rounds,
                "medians": medians,
                "samples": samples,
                "cpu_us_per_op": cpu_medians,
                "cpu_samples": cpu_samples,
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
        "(above 1: django-messaging is faster); *CPU ratio*, where shown, is that variant's CPU "
        "time per operation divided by django-messaging's (above 1: django-messaging uses less).",
        "",
    ]
    for result in results:
        lines += [f"## {result['scenario']}", ""]
        if result["note"]:
            lines += [result["note"], ""]
        cpu = result.get("cpu_us_per_op") or {}
        if cpu:
            lines += [
                f"| variant | median {result['unit']} | ratio | CPU µs/op | CPU ratio | rounds |",
                "|---|---:|---:|---:|---:|---:|",
            ]
        else:
            lines += [
                f"| variant | median {result['unit']} | ratio | rounds |",
                "|---|---:|---:|---:|",
            ]
        ours_cpu = cpu.get(result["ours"])
        for label, value in result["medians"].items():
            ratio = result["ratios"].get(label)
            shown = "—" if label == result["ours"] else (f"{ratio:.2f}×" if ratio else "n/a")
            rounds = len(result["samples"][label])
            if not cpu:
                lines.append(f"| {label} | {value:,.0f} | {shown} | {rounds} |")
                continue
            mine = cpu.get(label)
            cpu_shown = f"{mine:,.0f}" if mine is not None else "n/a"
            if label == result["ours"]:
                cpu_ratio = "—"
            else:
                # Above 1: django-messaging spends less CPU per operation.
                cpu_ratio = f"{mine / ours_cpu:.2f}×" if mine and ours_cpu else "n/a"
            lines.append(
                f"| {label} | {value:,.0f} | {shown} | {cpu_shown} | {cpu_ratio} | {rounds} |"
            )
        for label, error in result["errors"].items():
            lines.append(
                f"| {label} | failed: {error.splitlines()[-1][:120] if error else ''} | | |"
            )
        for check in result["targets"]:
            ratio = f"{check['ratio']:.2f}×" if check["ratio"] else "n/a"
            verdict = "met" if check["met"] else "NOT MET"
            lines.append("")
            bound = (
                f"≤ {check['at_most']:.3g}×"
                if check.get("at_most") is not None
                else f"≥ {check['at_least']:.2g}×"
            )
            lines.append(f"- target: {bound} {check['other']}: measured {ratio} — **{verdict}**")
        lines.append("")
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))


def emit(ops: int, seconds: float, cpu_seconds: float | None = None) -> None:
    """What a variant prints last; ``cpu_seconds`` is ``time.process_time()`` spent in the loop."""
    result: dict[str, float] = {"ops": ops, "seconds": seconds}
    if cpu_seconds is not None:
        result["cpu_seconds"] = cpu_seconds
    print(json.dumps(result), flush=True)


def wait_for(child: subprocess.Popen, done: Callable[[], bool], what: str) -> None:
    """Poll ``done()`` every 5 ms until it holds; raise with the child's stderr when the child
    exits first or ten minutes pass."""
    deadline = time.monotonic() + 600
    while not done():
        if child.poll() is not None or time.monotonic() > deadline:
            stderr = child.stderr.read() if child.stderr is not None else ""
            raise RuntimeError(f"{what}: the process stopped or is too slow: {stderr!r}")
        time.sleep(0.005)


def cpu_so_far(pid: int) -> float:
    """The CPU seconds (user + system, all threads) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: What the "metrics and tracing enabled" variants turn on, for their notes.
OBSERVABILITY_NOTE = (
    "The *metrics and tracing enabled* row runs the same code after `metrics.enable()` in "
    "multiprocess mode (a fresh `PROMETHEUS_MULTIPROC_DIR`, as a worker command with "
    "`--metrics-port` does; no HTTP server) and `tracing.enable()` with an OpenTelemetry SDK "
    "`TracerProvider` whose `BatchSpanProcessor` hands the spans to an exporter that drops "
    "them (the exporter's own cost, I/O, is left out). The *metrics enabled* and *tracing "
    "enabled* rows turn on one of the two."
)


def enable_observability(what: str = "observed") -> None:
    """Metrics as a worker started with ``--metrics-port`` has them (multiprocess mode, no
    server), and tracing to an SDK provider whose batch processor exports to nowhere;
    ``what``: "observed" (both), "metrics" or "tracing" (that one alone)."""
    import atexit
    import shutil
    import tempfile

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from django_messaging.core import metrics, tracing

    class Dropped(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    if what in ("observed", "metrics"):
        directory = tempfile.mkdtemp(prefix="bench-metrics-")
        atexit.register(shutil.rmtree, directory, True)
        assert metrics.enable(multiprocess_dir=directory, status_packages=())
    if what in ("observed", "tracing"):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropped()))
        assert tracing.enable(provider)


#: variant key suffix -> label suffix of the observability variants
OBSERVED = {
    "observed": "metrics and tracing enabled",
    "metrics": "metrics enabled",
    "tracing": "tracing enabled",
}
