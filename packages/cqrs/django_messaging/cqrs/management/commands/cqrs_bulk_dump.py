from __future__ import annotations

import os
import sys
from contextlib import closing
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_messaging.cqrs.dump import master_json_lines, master_rows
from django_messaging.cqrs.management.utils import Progress, master_model, to_json


class Command(BaseCommand):
    help = (
        "Dump every row of a master model to a file for cqrs_bulk_load (no broker involved).\n\n"
        "The file's first line is the CQRS_ID, then one JSON object per row, in pk order.\n\n"
        "Example: python manage.py cqrs_bulk_dump --cqrs-id=author -o author.dump --progress"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cqrs-id", "-c", "-cid", required=True, help="master CQRS_ID")
        parser.add_argument("--output", "-o", help="file (default <cqrs_id>.dump; - for stdout)")
        parser.add_argument("--batch", "-b", type=int, default=10000, help="rows per query")
        parser.add_argument("--progress", "-p", action="store_true", help="progress on stderr")
        parser.add_argument("--force", "-f", action="store_true", help="overwrite the file")

    def handle(self, *args: Any, **options: Any) -> None:
        model = master_model(options["cqrs_id"])
        output = options["output"] or f"{options['cqrs_id']}.dump"
        if output != "-" and os.path.exists(output) and not options["force"]:
            raise CommandError(f"File {output} exists! Use --force to overwrite it.")
        queryset = model._default_manager.all()
        progress = Progress(
            queryset.count() if options["progress"] else 0, self.stderr, options["progress"]
        )
        stream = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")  # noqa: SIM115
        written = 0
        try:
            stream.write(options["cqrs_id"])
            lines = master_json_lines(model, options["batch"], queryset.db)
            if lines is not None:
                # A failed write (a reader that went away, a full disk) ends the COPY now: left
                # to the garbage collector, it would hold the connection while anything keeps
                # the error's traceback.
                with closing(lines):
                    for batch in lines:
                        stream.write("\n" + "\n".join(batch))
                        written += len(batch)
                        progress.add(len(batch))
            else:
                for rows in master_rows(model, queryset, options["batch"]):
                    stream.write("".join("\n" + to_json(row) for row in rows))
                    written += len(rows)
                    progress.add(len(rows))
        finally:
            if stream is not sys.stdout:
                stream.close()
            else:
                stream.flush()
        if output != "-":
            self.stderr.write(f"Done! {written} instance(s) saved in {output}.")
