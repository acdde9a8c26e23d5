"""CQRS: a master model replicated to a replica by a separate `cqrs_consume` process."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pika
from django.conf import settings
from django.db import connection

from tests.project.demo.context import DemoContext

TITLE = "cqrs: master -> RabbitMQ -> replica process, revisions and tombstones"
ROOT = Path(__file__).resolve().parents[3]


def run(ctx: DemoContext) -> None:
    from django_messaging.cqrs.registries import ReplicaRegistry
    from django_messaging.cqrs.transport import RabbitMQTransport
    from django_messaging.cqrs.transport.rabbit_mq import declare_replica_topology
    from tests.project.cqrs_app.models import Product, ProductRef

    suffix = uuid.uuid4().hex[:8]
    cqrs = settings.MESSAGING["CQRS"]
    cqrs["exchange"], cqrs["queue"] = f"demo-cqrs-{suffix}", f"demo-replica-{suffix}"
    conn = pika.BlockingConnection(pika.URLParameters(cqrs["url"]))
    channel = conn.channel()
    declare_replica_topology(channel, list(ReplicaRegistry.models))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs["queue"],
    }
    if connection.vendor == "sqlite":
        env["MESSAGING_SQLITE_PATH"] = str(connection.settings_dict["NAME"])
    replica = subprocess.Popen(
        [sys.executable, "-m", "django", "cqrs_consume", "-w", "1"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.project.settings"},
        start_new_session=True,
    )
    ctx.say(f"replica: `cqrs_consume -w 1` started as pid {replica.pid} on queue {cqrs['queue']}")
    try:
        product = Product.objects.create(
            name="standing desk",
            price=Decimal("499.990000"),
            at=dt.time(9, 30),
            duration=dt.timedelta(hours=2),
            blob=b"\x00\x01binary",
        )
        ctx.say(f"master: created Product {product.pk} (revision 0)")
        row = ctx.wait_for(lambda: ProductRef.objects.filter(pk=product.pk).first(), what="row")
        ctx.say(
            f"replica: ProductRef {row.pk} name={row.name!r} price={row.price} at={row.at} "
            f"duration={row.duration} blob={bytes(row.blob)!r}"
        )
        product.name = "standing desk XL"
        product.save()
        ctx.wait_for(
            lambda: ProductRef.objects.filter(pk=product.pk, cqrs_revision=1).exists(),
            what="update",
        )
        ctx.say(f"replica: revision 1 applied, name={ProductRef.objects.get(pk=product.pk).name!r}")
        pk = product.pk
        product.delete()
        ctx.wait_for(lambda: not ProductRef.objects.filter(pk=pk).exists(), what="delete")
        from django_messaging.cqrs.models import Tombstone

        ctx.say(
            f"replica: row deleted; tombstone kept so a late save cannot bring it back: "
            f"{Tombstone.objects.filter(cqrs_id='product', instance_pk=str(pk)).exists()}"
        )
    finally:
        os.killpg(replica.pid, signal.SIGTERM)
        code = replica.wait(timeout=30)
        ctx.say(f"replica: SIGTERM -> exited with {code}")
        RabbitMQTransport.clean_connection()
        for name in (cqrs["queue"], f"dead_letter_{cqrs['queue']}"):
            channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=cqrs["exchange"])
        conn.close()
    if code != 0:
        raise RuntimeError("the replica process did not stop cleanly")
