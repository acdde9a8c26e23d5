"""``kafka_consume`` as a real process: SIGKILL loses nothing, SIGTERM commits and exits 0,
a crashed consumer is restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services
from tests.helpers import wait_until
from tests.kafka.conftest import committed, committed_total, produce_raw

ROOT = Path(__file__).resolve().parents[2]
FILE_CONSUMER = "tests.project.kafka_app.consumers.FileConsumer"
SECOND_CONSUMER = "tests.project.kafka_app.consumers.SecondFileConsumer"
RETRYING_CONSUMER = "tests.project.kafka_app.consumers.RetryingFileConsumer"


def start(kafka_bootstrap: str, env: dict[str, str], *keys: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        services.KAFKA_BOOTSTRAP_ENV: kafka_bootstrap,
        "PYTHONPATH": str(ROOT),
        "MESSAGING_KAFKA_TEST_SUBPROCESS": "1",
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "kafka_consume",
            *keys,
            "--settings",
            "tests.project.settings",
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split(" ", 4) for line in path.read_text().splitlines() if line]


@pytest.fixture
def setup(create_topic, group, tmp_path, kafka_bootstrap):
    topic = create_topic(partitions=3)
    output = tmp_path / "handled.txt"
    env = {"KAFKA_APP_TOPIC": topic, "KAFKA_APP_GROUP": group, "KAFKA_APP_OUTPUT": str(output)}
    return topic, group, output, env


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_mid_stream_then_restart_loses_nothing(setup, kafka_bootstrap):
    topic, _group, output, env = setup
    env["KAFKA_APP_SLOW"] = "0.001"
    values = [f"v{i}" for i in range(1500)]
    produce_raw(kafka_bootstrap, topic, [v.encode() for v in values[:750]])
    proc = start(kafka_bootstrap, env, FILE_CONSUMER)
    try:
        produce_raw(kafka_bootstrap, topic, [v.encode() for v in values[750:]])
        wait_until(lambda: len(lines(output)) >= 200, timeout=30, what="first messages")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        handled_before = {line[4] for line in lines(output)}
        assert 0 < len(handled_before) < len(values)
        proc = start(kafka_bootstrap, env, FILE_CONSUMER)
        wait_until(
            lambda: {line[4] for line in lines(output)} >= set(values),
            timeout=40,
            what="every value after the restart",
        )
    finally:
        assert stop(proc) == 0, proc.stdout.read().decode()[-3000:]


def test_sigterm_finishes_commits_and_exits_zero(setup, kafka_bootstrap):
    topic, group, output, env = setup
    produce_raw(kafka_bootstrap, topic, [f"m{i}".encode() for i in range(30)])
    proc = start(kafka_bootstrap, env, FILE_CONSUMER)
    try:
        wait_until(lambda: len(lines(output)) >= 30, timeout=30, what="all messages handled")
    finally:
        code = stop(proc)
    assert code == 0, proc.stdout.read().decode()[-3000:]
    assert committed_total(kafka_bootstrap, group, topic, partitions=3) == 30


def test_sigterm_stops_parallel_consumers_gracefully(
    setup, create_topic, kafka_bootstrap, unique_name
):
    """django-kafka 0.5.13: SIGTERM killed the parent and left the consumer processes running,
    without a final commit."""
    topic, group, output, env = setup
    second, second_group = create_topic(), unique_name("g2")
    env.update(KAFKA_APP_TOPIC_2=second, KAFKA_APP_GROUP_2=second_group)
    produce_raw(kafka_bootstrap, topic, [f"a{i}".encode() for i in range(20)])
    produce_raw(kafka_bootstrap, second, [f"b{i}".encode() for i in range(10)])
    proc = start(kafka_bootstrap, env, FILE_CONSUMER, SECOND_CONSUMER)
    try:
        wait_until(lambda: len(lines(output)) >= 30, timeout=40, what="both consumers' messages")
        workers = {line[0] for line in lines(output)}
    finally:
        code = stop(proc)
    assert code == 0, proc.stdout.read().decode()[-3000:]
    assert len(workers) == 2  # one process per consumer
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # no orphan left behind
    assert committed_total(kafka_bootstrap, group, topic, partitions=3) == 20
    assert committed(kafka_bootstrap, second_group, second) == [10]


def test_crashed_consumer_is_restarted_and_its_message_redelivered(
    setup, create_topic, kafka_bootstrap, unique_name, tmp_path
):
    topic, _group, output, env = setup
    second = create_topic()
    marker = tmp_path / "crashed"
    env.update(
        KAFKA_APP_TOPIC_2=second,
        KAFKA_APP_GROUP_2=unique_name("g2"),
        KAFKA_APP_CRASH_MARKER=str(marker),
    )
    produce_raw(kafka_bootstrap, topic, [b"before", b"crash", b"after"], key=b"same-partition")
    produce_raw(kafka_bootstrap, second, [b"other"])
    proc = start(kafka_bootstrap, env, FILE_CONSUMER, SECOND_CONSUMER)
    try:
        wait_until(
            lambda: {"crash", "after", "other"} <= {line[4] for line in lines(output)},
            timeout=45,
            what="the crashed message handled after the restart",
        )
        assert marker.exists()
        pids = {line[0] for line in lines(output) if line[1] == topic}
        assert proc.poll() is None
    finally:
        code = stop(proc)
    assert code == 0
    assert len(pids) >= 1


def test_kafka_consume_without_arguments_runs_every_consumer_and_retry_consumer(
    create_topic, unique_name, tmp_path, kafka_bootstrap
):
    topic, group = create_topic(), unique_name("g3")
    output, marker = tmp_path / "handled.txt", tmp_path / "failed"
    env = {
        "KAFKA_APP_TOPIC_3": topic,
        "KAFKA_APP_GROUP_3": group,
        "KAFKA_APP_OUTPUT": str(output),
        "KAFKA_APP_CRASH_MARKER": str(marker),
    }
    produce_raw(kafka_bootstrap, topic, [b"fail-once", b"fine"])
    # no consumer named: every registered consumer runs, the generated ``.retry`` one included
    proc = start(kafka_bootstrap, env)
    try:
        wait_until(
            lambda: (
                {(line[1], line[4]) for line in lines(output)}
                >= {(topic, "fine"), (f"{group}.{topic}.retry.1", "fail-once")}
            ),
            timeout=40,
            what="the failed message handled by the retry consumer",
        )
    finally:
        code = stop(proc)
    assert code == 0, proc.stdout.read().decode()[-3000:]
    assert marker.exists()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_consumers_run_under_the_spawn_and_forkserver_start_methods(
    method, create_topic, unique_name, tmp_path, kafka_bootstrap
):
    """django-kafka #192: a worker process started with ``spawn`` or ``forkserver`` (macOS,
    Windows, Python 3.14's default on Linux) found the consumer registry empty. Here each
    worker sets Django up again and finds its consumer, the generated ``.retry`` one too."""
    topic, group = create_topic(), unique_name("g5")
    output, marker = tmp_path / "handled.txt", tmp_path / "failed"
    env = {
        "KAFKA_APP_TOPIC_3": topic,
        "KAFKA_APP_GROUP_3": group,
        "KAFKA_APP_OUTPUT": str(output),
        "KAFKA_APP_CRASH_MARKER": str(marker),
    }
    produce_raw(kafka_bootstrap, topic, [b"fail-once", b"fine"])
    proc = start(
        kafka_bootstrap,
        env,
        RETRYING_CONSUMER,
        f"{RETRYING_CONSUMER}.retry",
        "--start-method",
        method,
        "-v",
        "2",
    )
    try:
        wait_until(
            lambda: (
                {(line[1], line[4]) for line in lines(output)}
                >= {(topic, "fine"), (f"{group}.{topic}.retry.1", "fail-once")}
            ),
            timeout=40,
            what=f"both consumers handling their messages under {method}",
        )
    finally:
        code = stop(proc)
    out = proc.stdout.read().decode()
    assert code == 0, out[-3000:]
    # each worker logs at the level -v asked for in the parent
    assert out.count("stopped cleanly") == 2, out[-3000:]
    pids = {int(line[0]) for line in lines(output)}
    assert len(pids) == 2 and proc.pid not in pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no orphan left behind
    assert committed(kafka_bootstrap, group, topic) == [2]


def test_workers_runs_that_many_processes_of_each_consumer_sharing_its_group(
    setup, kafka_bootstrap
):
    """``--workers 2``: two processes of the one consumer named, splitting its partitions."""
    topic, group, output, env = setup
    env["KAFKA_APP_SLOW"] = "0.01"
    proc = start(kafka_bootstrap, env, FILE_CONSUMER, "--workers", "2")
    sent = 0

    def two_pids_handled() -> bool:
        nonlocal sent
        values = [f"w{sent + i}".encode() for i in range(3)]
        for partition in range(3):
            produce_raw(
                kafka_bootstrap, topic, values[partition : partition + 1], partition=partition
            )
        sent += 3
        return len({line[0] for line in lines(output)}) == 2

    try:
        wait_until(two_pids_handled, timeout=60, interval=0.2, what="two worker pids")
        wait_until(lambda: len(lines(output)) >= sent, timeout=40, what="every message handled")
    finally:
        code = stop(proc)
    assert code == 0, proc.stdout.read().decode()[-3000:]
    pids = {line[0] for line in lines(output)}
    assert str(proc.pid) not in pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # no orphan left behind
    assert committed_total(kafka_bootstrap, group, topic, partitions=3) == sent


def test_unknown_consumer_key_is_a_usage_error_exit_2(kafka_bootstrap):
    proc = start(kafka_bootstrap, {}, "no.such.Consumer")
    assert proc.wait(60) == 2
    assert b"not registered" in proc.stdout.read()


def test_workers_below_one_is_a_usage_error_exit_2(kafka_bootstrap):
    proc = start(kafka_bootstrap, {}, FILE_CONSUMER, "--workers", "0")
    assert proc.wait(60) == 2
    assert b"--workers must be at least 1" in proc.stdout.read()


def test_list_prints_the_registry_keys(kafka_bootstrap):
    proc = start(kafka_bootstrap, {}, "--list")
    assert proc.wait(60) == 0
    keys = proc.stdout.read().decode().split()
    assert FILE_CONSUMER in keys and SECOND_CONSUMER in keys


def test_help_explains_with_an_example():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "kafka_consume",
            "--help",
            "--settings",
            "tests.project.settings",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert b"./manage.py kafka_consume" in done.stdout
    for flag in (b"--workers", b"--reload", b"--list", b"--start-method"):
        assert flag in done.stdout
