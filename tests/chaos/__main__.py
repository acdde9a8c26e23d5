"""``python -m tests.chaos [--seed N] [--duration S] [--smoke]``: run the chaos soak, write
``chaos-results.md`` and ``chaos-results.png``, exit 1 if anything was lost."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.chaos.cluster import ROOT, Cluster, Supervisor, Worker, cpu_seconds
from tests.chaos.faults import Fault, Injector, schedule


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description="Every package under load on private PostgreSQL, RabbitMQ and Kafka while "
        "a seeded schedule of faults runs; then prove nothing was lost. Example: "
        "python -m tests.chaos --seed 7 --duration 600",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="fault schedule seed (default: random)"
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of load and faults")
    parser.add_argument(
        "--smoke", action="store_true", help="a short run: 45 s, faults 3-6 s apart"
    )
    parser.add_argument("--rate", type=float, default=8, help="load steps per second")
    parser.add_argument("--output", default=str(ROOT / "chaos-results.md"), help="report path")
    parser.add_argument("--drain", type=float, default=240, help="seconds allowed to catch up")
    return parser.parse_args(argv)


def build_workers(cluster: Cluster, logs: Path, rate: float) -> dict[str, Worker]:
    env = {**cluster.env(), "MESSAGING_CQRS_OUTBOX_GRACE": "10"}
    commands = {
        "load": ["tests.chaos.load", str(rate)],
        "relay": ["django", "publish"],
        "subscriber": [
            "django",
            "subscribe",
            "tests.outbox.callbacks.store_order",
            cluster.destination,
            cluster.outbox_queue,
        ],
        "cqrs_consume": ["django", "cqrs_consume", "-w", "2"],
        "cqrs_pending": ["django", "cqrs_pending", "run"],
        "kafka_consume": [
            "django",
            "kafka_consume",
            "tests.project.kafka_app.consumers.ChaosConsumer",
        ],
        "follower": ["django", "sync_followers", "TrickCounter"],
    }
    return {
        name: Worker(name, argv, env, logs / f"{name}.log", periodic=name == "follower")
        for name, argv in commands.items()
    }


def main(argv: list[str]) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.randrange(1, 1_000_000)
    duration = 45.0 if args.smoke and args.duration == 600 else args.duration
    gap = (3.0, 6.0) if args.smoke else (6.0, 14.0)
    targets = [
        "load",
        "relay",
        "subscriber",
        "cqrs_consume",
        "cqrs_consume-child",
        "cqrs_pending",
        "kafka_consume",
        "follower",
    ]
    faults = schedule(seed, duration, targets, gap)
    print(f"chaos: seed {seed}, {duration:.0f} s, {len(faults)} faults:", flush=True)
    for fault in faults:
        print(f"  {fault.at:7.1f}s  {fault.kind}", flush=True)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so that workers and services are cleaned up.
    signal.signal(
        signal.SIGTERM, lambda signum, frame: sys.exit(f"chaos: stopped by signal {signum}")
    )
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    t0 = time.monotonic()
    cluster = Cluster(workdir)
    print(f"chaos: services up in {time.monotonic() - t0:.0f} s (logs in {workdir})", flush=True)
    try:
        failures = soak(args, seed, duration, faults, cluster, workdir)
    finally:
        cluster.destroy()
    if failures:
        print("chaos: FAIL\n  " + "\n  ".join(failures), flush=True)
        print(f"chaos: worker logs kept in {workdir}", flush=True)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("chaos: PASS", flush=True)
    return 0


def soak(
    args: argparse.Namespace,
    seed: int,
    duration: float,
    faults: list[Fault],
    cluster: Cluster,
    workdir: Path,
) -> list[str]:
    cluster.migrate()
    env = cluster.env(direct=True)
    os.environ.update(env)
    from tests import services

    # Read at import, before the environment named the private services: point them there.
    services.POSTGRES_URL = env["MESSAGING_POSTGRES_URL"]
    services.RABBITMQ_URL = env["MESSAGING_RABBITMQ_URL"]
    services.STOMP_ADDRESS = env["MESSAGING_STOMP_ADDRESS"]
    import django

    django.setup()
    everyone = build_workers(cluster, workdir, args.rate)
    try:
        return _soak(args, seed, duration, faults, cluster, workdir, everyone)
    finally:
        for worker in everyone.values():  # left running only when the soak stopped on an error
            worker.kill()


def _soak(
    args: argparse.Namespace,
    seed: int,
    duration: float,
    faults: list[Fault],
    cluster: Cluster,
    workdir: Path,
    everyone: dict[str, Worker],
) -> list[str]:
    from django.db import connections

    from tests.chaos import checker, report

    workers = dict(everyone)
    load = workers.pop("load")
    supervisor = Supervisor(list(workers.values()))
    supervisor.start()
    _wait_for_queues(cluster)  # nothing published before the replica and subscriber queues exist
    supervisor.workers.append(load)
    injector = Injector(cluster, {**workers, "load": load}, seed, patience=10 if args.smoke else 60)
    progress = checker.Progress(cluster)
    samples: list[report.Sample] = []
    loads: list[float] = []  # the machine's 1-minute load average, once a second
    running = threading.Event()
    running.set()

    def monitor() -> None:
        while running.is_set():
            loads.append(os.getloadavg()[0])
            try:
                samples.append((time.time() - start, progress.sample(injector.garbage["kafka"])))
            except Exception:
                connections.close_all()  # the database is away: a gap in the plot
            time.sleep(1)

    _wait(
        lambda: all(d > 0 for _, d in _safe(progress.sample, 0).values()), 180, "first deliveries"
    )
    start = time.time()
    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    previous = start
    for fault in faults:  # one at a time, and never two in a row without a breath
        time.sleep(max(0.0, start + fault.at - time.time(), previous + 2 - time.time()))
        injector.inject(fault)
        print(
            f"chaos: {fault.started - start:6.1f}s {fault.kind} ({fault.ended - fault.started:.1f}s) {fault.note}",
            flush=True,
        )
    time.sleep(max(0.0, start + duration - time.time()))
    supervisor.workers.remove(load)
    load.stop()
    print("chaos: load stopped, draining", flush=True)

    def drained() -> bool:
        counts = _safe(progress.sample, injector.garbage["kafka"])
        return bool(counts) and all(d >= p for p, d in counts.values())

    stopped = time.monotonic()
    caught_up = _wait(drained, args.drain, "the workers to catch up", quiet=True)
    drain = (
        f"in {time.monotonic() - stopped:.0f} s" if caught_up else f"not within {args.drain:.0f} s"
    )
    time.sleep(3)
    failures: list[str] = []
    # a worker SIGTERMed on its own is replaced by its supervisor: the pool is whole at the end
    pool = len(workers["cqrs_consume"].children())
    if pool != 2:
        failures.append(f"cqrs_consume runs {pool} of its 2 workers at the end")
    busy = _busy(workers)
    failures += [f"{name} still busy at rest: {cpu:.2f} CPU s/s" for name, cpu in busy.items()]
    running.clear()
    watcher.join()
    supervisor.halt()
    final = _stop_all(workers, failures)
    progress.close()
    logs = {
        name: (workdir / f"{name}.log").read_text(errors="replace")
        for name in ("subscriber", "cqrs_consume", "kafka_consume")
    }
    verdict = checker.check(cluster, dict(injector.garbage), logs)
    failures = verdict.failures + failures
    verdict.failures = failures
    recovery = report.recovery_times(faults, samples, start)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    report.plot(samples, faults, start, png)
    report.write(
        out,
        seed=seed,
        duration=duration,
        faults=faults,
        recovery=recovery,
        verdict=verdict,
        workers={
            name: {
                "starts": w.starts,
                "exits": w.exits,
                "unexpected": w.unexpected_exits(),
                "final": final.get(name),
            }
            for name, w in {**workers, "load": load}.items()
        },
        machine=_machine(loads),
        plot_name=png.name,
        command=f"python -m tests.chaos {' '.join(sys.argv[1:])}".strip(),
        drained=drain,
    )
    print(f"chaos: {out} and {png} written", flush=True)
    for name, w in workers.items():
        for when, code, _ in w.unexpected_exits():
            print(f"chaos: {name} exited {code} at {when - start:.1f}s, nobody asked", flush=True)
    return failures


def _stop_all(workers: dict[str, Worker], failures: list[str]) -> dict[str, int | None]:
    """SIGTERM every worker; each must be running and exit 0 (a periodic one finishes its run)."""
    final: dict[str, int | None] = {}
    for name, worker in workers.items():
        if worker.periodic:
            if worker.process is not None:
                worker.process.wait(120)
                worker.reap()
            final[name] = None
            if worker.exits and worker.exits[-1][1] != 0:
                failures.append(f"{name}'s last run exited {worker.exits[-1][1]}")
            continue
        final[name] = worker.stop()
        if worker.orphans():
            failures.append(f"{name}: processes of an earlier run were still alive at the end")
        if final[name] is None:
            failures.append(f"{name} was not running at the end")
        elif final[name] != 0:
            failures.append(f"{name} exited {final[name]} on the final SIGTERM")
    return final


def _wait_for_queues(cluster: Cluster) -> None:
    import pika

    def declared() -> bool:
        connection = pika.BlockingConnection(pika.URLParameters(cluster.rabbit.url))
        try:
            for queue in (cluster.outbox_queue, cluster.cqrs_queue):
                connection.channel().queue_declare(queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False
        finally:
            if connection.is_open:
                connection.close()

    _wait(declared, 180, "the subscriber's and the replica's queues")


def _safe(sample, garbage):  # type: ignore[no-untyped-def]
    from django.db import connections

    try:
        return sample(garbage)
    except Exception:
        connections.close_all()
        return {}


def _wait(condition, seconds: float, what: str, quiet: bool = False) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    if not quiet:
        raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
    print(f"chaos: {what}: not within {seconds:.0f} s", flush=True)
    return False


def _busy(workers: dict[str, Worker], window: float = 5.0) -> dict[str, float]:
    """Workers that burn CPU with nothing to do (a loop that never waits)."""
    steady = {n: w for n, w in workers.items() if not w.periodic and w.process is not None}
    before = {n: cpu_seconds(w.process.pid) for n, w in steady.items()}  # type: ignore[union-attr]
    time.sleep(window)
    after = {n: cpu_seconds(w.process.pid) for n, w in steady.items()}  # type: ignore[union-attr]
    return {
        n: (after[n] - before[n]) / window for n in steady if (after[n] - before[n]) / window > 0.3
    }


def _machine(loads: list[float]) -> str:
    load = os.getloadavg()
    during = (
        f"1-minute load average {statistics.median(loads):.1f} median, {max(loads):.1f} max "
        "during the run; "
        if loads
        else ""
    )
    return (
        f"{os.cpu_count()} cores, {during}{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at "
        "the end of the run (shared with other work)"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
