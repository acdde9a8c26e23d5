from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import router, transaction

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.controller.consumer import consume_batch
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.management.utils import Progress, replica_model


class Command(BaseCommand):
    help = (
        "Load a cqrs_bulk_dump file into the replica model (no broker involved).\n\n"
        "Rows are applied in batches with the replica's revision rules: a row already at the "
        "same or a newer revision is kept. --clear deletes every replica row first.\n\n"
        "Example: python manage.py cqrs_bulk_load -i author.dump --clear"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--input", "-i", required=True, help="dump file (- for stdin)")
        parser.add_argument(
            "--clear", "-c", action="store_true", help="delete all replica rows first"
        )
        parser.add_argument("--batch", "-b", type=int, default=10000, help="rows per transaction")
        parser.add_argument("--progress", "-p", action="store_true", help="progress on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["input"]
        try:
            stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"File {path} can't be opened: {exc}") from exc
        try:
            counted = options["progress"] and stream is not sys.stdin
            self._load(stream, options, _count_rows(path) if counted else None)
        finally:
            if stream is not sys.stdin:
                stream.close()

    def _load(self, stream: Any, options: dict[str, Any], total: int | None) -> None:
        first = stream.readline().strip()
        if not first:
            raise CommandError("The dump is empty: its first line must be the CQRS_ID.")
        model = replica_model(first)
        db = router.db_for_write(model)
        if options["clear"]:
            with transaction.atomic(using=db):
                deleted = model._default_manager.using(db).all().delete()[0]
            self.stderr.write(f"Cleared {deleted} row(s).")
        serializer = get_serializer("json")
        progress = Progress(total, self.stderr, options["progress"])
        loaded = failed = 0
        batch: list[tuple[int, TransportPayload]] = []

        def flush() -> None:
            nonlocal loaded, failed
            if not batch:
                return
            errors = consume_batch([payload for _, payload in batch])
            for (line_no, _), error in zip(batch, errors, strict=True):
                if error is None:
                    loaded += 1
                else:
                    failed += 1
                    self.stderr.write(f"Line {line_no}: {error}")
            progress.add(len(batch))
            batch.clear()

        for line_no, line in enumerate(stream, start=2):
            line = line.strip()
            if not line:
                continue
            try:
                data = serializer.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                # The master's field names: its pk is "id" unless CQRS_MAPPING renames it.
                pk = data.get("id", data.get(model._meta.pk.name))
                payload = TransportPayload(SignalType.SAVE, first, data, pk)
            except Exception as exc:
                failed += 1
                self.stderr.write(f"Line {line_no}: can't be parsed: {exc}")
                continue
            batch.append((line_no, payload))
            if len(batch) >= options["batch"]:
                flush()
        flush()
        self.stderr.write(f"Done! {loaded} row(s) loaded, {failed} failed.")
        if failed:
            sys.exit(1)


def _count_rows(path: str) -> int | None:
    """Rows in a dump file (its lines but the first), for the progress lines."""
    try:
        with open(path, "rb") as dump:
            return max(sum(1 for line in dump if line.strip()) - 1, 0)
    except OSError:
        return None
