"""The fault schedule (seeded, replayable) and the injection of each kind of fault."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pika
import stomp
from confluent_kafka import Producer

from tests.chaos.cluster import Cluster, Worker

#: Kinds that do not concern one worker; the worker kinds are ``kill9:<name>``, ``term:<name>``.
SERVICE_KINDS = [
    "rabbitmq-restart",
    "postgres-restart",
    "postgres-stop-10s",
    "cut:postgres",
    "cut:amqp",
    "cut:stomp",
    "kafka-pause",
    "garbage",
]


@dataclass
class Fault:
    at: float  # seconds after the start of the soak
    kind: str
    started: float = 0.0  # wall clock, filled in when injected
    ended: float = 0.0
    note: str = ""


def schedule(
    seed: int, duration: float, workers: list[str], gap: tuple[float, float]
) -> list[Fault]:
    """Faults from ``gap[0]``-``gap[1]`` s apart over ``duration`` s; every kind once before any
    kind twice (in an order drawn from ``seed``), so a long enough run covers them all."""
    rng = random.Random(seed)
    kinds = [f"{sig}:{name}" for name in workers for sig in ("kill9", "term")] + SERVICE_KINDS
    faults, at, bag = [], rng.uniform(*gap), []
    while at < duration:
        if not bag:
            bag = rng.sample(kinds, len(kinds))
        faults.append(Fault(round(at, 1), bag.pop()))
        at += rng.uniform(*gap)
    return faults


class Injector:
    """Applies faults to the cluster and the workers; counts the garbage it sent."""

    def __init__(
        self, cluster: Cluster, workers: dict[str, Worker], seed: int, patience: float = 60
    ) -> None:
        self.cluster, self.workers = cluster, workers
        self.patience = patience  # seconds a fault waits for a supervisor's worker to exist
        self.rng = random.Random(seed + 1)
        self.garbage = Counter[str]()  # input -> messages the broker accepted
        self._serial = 0
        self._producer = Producer({"bootstrap.servers": cluster.kafka.bootstrap})

    def inject(self, fault: Fault) -> None:
        fault.started = time.time()
        kind, _, target = fault.kind.partition(":")
        try:
            if kind in ("kill9", "term"):
                fault.note = self._signal(
                    target, signal.SIGKILL if kind == "kill9" else signal.SIGTERM
                )
            elif kind == "rabbitmq-restart":
                self.cluster.rabbit.stop_app()
                time.sleep(self.rng.uniform(2, 5))
                self.cluster.rabbit.start_app()
            elif kind == "postgres-restart":
                self.cluster.postgres.stop()
                self.cluster.postgres.start()
            elif kind == "postgres-stop-10s":
                self.cluster.postgres.stop()
                time.sleep(10)
                self.cluster.postgres.start()
            elif kind == "kafka-pause":
                fault.note = self._pause_kafka(self.rng.uniform(3, 10))
            elif kind == "cut":
                proxy = self.cluster.proxies[target]
                proxy.cut()
                pause = self.rng.uniform(0.5, 3)
                time.sleep(pause)
                proxy.restore()
                fault.note = f"{pause:.1f}s"
            elif kind == "garbage":
                fault.note = self._garbage(self.rng.randint(3, 8))
        except Exception as exc:
            fault.note = f"{fault.note} injection failed: {exc!r}"
        fault.ended = time.time()

    def _pause_kafka(self, seconds: float) -> str:
        """SIGSTOP the broker for ``seconds``, then SIGCONT: a broker that stops answering (a
        long GC pause, a frozen VM, a partition) and comes back with its data. Not a restart:
        this Tansu build keeps its log in memory only (no persistent storage engine compiled in),
        so a restarted broker would come back empty, which no Kafka deployment does."""
        process = self.cluster.kafka.process
        if process is None:
            return "not ours to pause"
        process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            process.send_signal(signal.SIGCONT)
        return f"{seconds:.1f}s"

    def _signal(self, name: str, signum: int) -> str:
        """``name`` is a worker, or ``<worker>-child``: one of the processes a supervisor forked."""
        worker = self.workers[name.removesuffix("-child")]
        if name.endswith("-child"):
            # a supervisor restarted moments ago may still be starting up (slow on a loaded
            # machine): its workers are the target, so wait for one
            deadline = time.monotonic() + self.patience
            while not (children := worker.children()) and time.monotonic() < deadline:
                time.sleep(0.5)
            if not children:
                return "no child running"
            pid = self.rng.choice(children)
            os.kill(pid, signum)
            return f"pid {pid}"
        if worker.process is None:
            return "not running"
        pid = worker.process.pid
        worker.signal(signum)
        return f"pid {pid}"

    # --- garbage on every input ----------------------------------------------------------------

    def _bodies(self, count: int) -> list[bytes]:
        shapes = [
            lambda: os.urandom(self.rng.randint(1, 64)),
            lambda: b"not json at all",
            lambda: b"[1, 2, 3]",
            lambda: b'{"truncated": ',
            lambda: json.dumps({"seq": "x", "signal_type": 7, "cqrs_id": []}).encode(),
            lambda: b"",
        ]
        return [self.rng.choice(shapes)() for _ in range(count)]

    def _next(self) -> str:
        self._serial += 1
        return f"garbage-{self._serial}"

    def _garbage(self, count: int) -> str:
        """``count`` bad messages on each input, sent straight to the brokers."""
        sent = []
        for name, send in (("kafka", self._kafka), ("cqrs", self._amqp), ("outbox", self._stomp)):
            for attempt in range(5):  # a broker may still be coming back from a fault
                try:
                    sent.append(f"{send(count)} {name}")
                    break
                except Exception as exc:
                    if attempt == 4:
                        sent.append(f"{name} failed: {exc!r}")
                    time.sleep(1)
        return ", ".join(sent)

    def _kafka(self, count: int) -> int:
        c, producer = self.cluster, self._producer
        delivered: list[str] = []
        for body in self._bodies(count):
            producer.produce(
                c.topic,
                body,
                key=self._next(),
                on_delivery=lambda err, msg: err is None and delivered.append(msg.key()),
            )
        producer.flush(30)
        self.garbage["kafka"] += len(delivered)
        return len(delivered)

    def _amqp(self, count: int) -> int:
        c = self.cluster
        amqp = pika.BlockingConnection(pika.URLParameters(c.rabbit.url))
        try:
            self._publish(amqp.channel(), count)
        finally:
            if amqp.is_open:
                amqp.close()
        return count

    def _publish(self, channel: Any, count: int) -> None:
        c = self.cluster
        channel.confirm_delivery()
        exchange = c.env()["MESSAGING_CQRS_EXCHANGE"]
        channel.exchange_declare(exchange, "topic", durable=True)
        for body in self._bodies(count):
            channel.basic_publish(
                exchange,
                "product",
                body,
                pika.BasicProperties(delivery_mode=2, headers={"chaos-garbage": self._next()}),
            )
            self.garbage["cqrs"] += 1  # confirm_delivery: basic_publish raised otherwise

    def _stomp(self, count: int) -> int:
        c = self.cluster
        done = threading.Event()

        class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
            def on_receipt(self, frame: object) -> None:
                done.set()

        conn = stomp.Connection12(
            [("127.0.0.1", c.rabbit.stomp_port)], heartbeats=(0, 0), vhost="/"
        )
        conn.set_listener("r", Receipts())
        # A JSON object would be an order to the subscriber's callback: not garbage there.
        bodies = [b for b in self._bodies(count * 2) if not b.startswith(b'{"seq"')][:count]
        try:
            conn.connect("guest", "guest", wait=True)
            for i, body in enumerate(bodies):
                headers = {"chaos-garbage": self._next(), "persistent": "true"}
                if i % 2:
                    headers["dop-msg-id"] = headers["chaos-garbage"]
                if i == len(bodies) - 1:
                    headers["receipt"] = "last"
                conn.send(c.destination, body, headers=headers)
            if not done.wait(30):
                raise RuntimeError("no receipt for the garbage sent over STOMP")
        finally:
            conn.disconnect()
        self.garbage["outbox"] += len(bodies)
        return len(bodies)
