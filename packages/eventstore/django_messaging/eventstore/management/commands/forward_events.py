"""``manage.py forward_events``: an application's notification log to Kafka, AMQP or another
broker, in order, with its position recorded in the event store's database."""

from __future__ import annotations

from argparse import RawDescriptionHelpFormatter
from functools import partial
from typing import Any

from django.core.management.base import CommandParser
from django.utils.module_loading import import_string

from django_messaging.core.commands import UsageError, WorkerCommand
from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.transports import Transport
from django_messaging.core.worker import WorkerFactory
from django_messaging.eventstore.forwarder import (
    UNDECODABLE_CHOICES,
    EventForwarder,
    forwarder_name,
    resolve_application,
)

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def kafka_transport(bootstrap: str | None, create_topics: bool) -> Transport:
    from django_messaging.core.transports.kafka import KafkaTransport, kafka_settings_config

    config = kafka_settings_config()
    if bootstrap:
        config["bootstrap.servers"] = bootstrap
    return KafkaTransport(config, create_topics=create_topics)


def amqp_transport(url: str, exchange: str) -> Transport:
    from django_messaging.core.transports.amqp import AmqpTransport

    return AmqpTransport(url, exchange=exchange)


def named_transport(path: str) -> Transport:
    transport = import_string(path)()
    if not isinstance(transport, Transport):
        raise ConfigurationError(f"--transport {path!r} returned {type(transport).__name__}")
    return transport


class Command(WorkerCommand):
    help = (
        "Forward the notification log of an eventsourcing application stored with "
        "django_messaging.eventstore to a Kafka topic, an AMQP exchange or the destination "
        "of another transport, in notification order. A page of events is sent, every message "
        "confirmed by the broker, and only then is the last id recorded as the forwarder's "
        "position (tracking table, the event store's database): a restart sends again what "
        "was sent but not recorded, never skips, never reorders. Each message's header "
        "dop-msg-id is '<application>:<notification id>', so an idempotent consumer applies "
        "it once. A broker or database that is away is waited for with back-off. Runs until "
        "SIGTERM/SIGINT, which finish the page in hand. Run one process per --name.\n\n"
        "The application is '<app label>.<attribute>' of an AppConfig, or the dotted path of "
        "an Application instance, an Application subclass (built with MESSAGING['EVENTSTORE']) "
        "or a function returning one.\n\n"
        "Examples:\n"
        "  manage.py forward_events school.training_school --kafka school-events\n"
        "  manage.py forward_events school.training_school --kafka school-events "
        "--bootstrap-servers kafka:9092 --create-topic --batch-size 1000\n"
        "  manage.py forward_events mysite.school.TrainingSchool --amqp events "
        "--routing-key school --amqp-url amqp://user:pass@rabbit:5672/%2F\n"
        "  manage.py forward_events school.training_school --raw --kafka school-raw\n"
        "  manage.py forward_events school.training_school "
        "--transport django_messaging.outbox.transports.stomp.StompTransport "
        "--destination /exchange/events/school"
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", RawDescriptionHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "application",
            help="'<app label>.<attribute>' or 'dotted.path' of the application to forward",
        )
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--kafka", metavar="TOPIC", help="forward to this Kafka topic")
        target.add_argument(
            "--amqp", metavar="EXCHANGE", help="publish to this AMQP exchange ('' the default)"
        )
        target.add_argument(
            "--transport",
            metavar="DOTTED.PATH",
            help="a callable returning a django_messaging.core Transport (with --destination)",
        )
        parser.add_argument(
            "--bootstrap-servers",
            metavar="HOST:PORT",
            help="Kafka brokers (default: MESSAGING['KAFKA'] GLOBAL_CONFIG/PRODUCER_CONFIG)",
        )
        parser.add_argument(
            "--create-topic",
            action="store_true",
            help="create the Kafka topic (one partition) if it does not exist",
        )
        parser.add_argument(
            "--amqp-url",
            default=DEFAULT_AMQP_URL,
            help="RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/%%2F)",
        )
        parser.add_argument(
            "--routing-key", help="AMQP routing key (default: the application's name)"
        )
        parser.add_argument(
            "--destination", help="the destination of --transport (a STOMP destination...)"
        )
        parser.add_argument(
            "--name",
            help="the name the position is recorded under (default forward:<broker>:<destination>)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help="events per page (default 500)"
        )
        parser.add_argument(
            "--raw",
            action="store_true",
            help="send the stored bytes unchanged (facts in dop-* headers) instead of JSON",
        )
        parser.add_argument(
            "--undecodable",
            choices=UNDECODABLE_CHOICES,
            default="stop",
            help="an event whose state cannot be decoded: 'stop' there with an error (default; "
            "nothing after it is sent), or send its stored bytes flagged by dop-decode-error",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=0.5,
            help="seconds between reads of the log once it is caught up (default 0.5)",
        )

    def check_options(self, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise UsageError("--batch-size must be at least 1")
        if options["poll_interval"] <= 0:
            raise UsageError("--poll-interval must be positive")
        if options["transport"] and not options["destination"]:
            raise UsageError("--transport needs --destination")
        if options["destination"] and not options["transport"]:
            raise UsageError("--destination goes with --transport")
        if options["transport"]:
            try:
                import_string(options["transport"])
            except ImportError as exc:
                raise UsageError(f"--transport: {exc}") from exc
        if options["name"] is not None and not 0 < len(options["name"]) <= 150:
            raise UsageError("--name must be 1 to 150 characters")

    def worker_factories(self, workers: int, **options: Any) -> list[WorkerFactory]:
        if workers != 1:
            raise UsageError(
                "forward_events runs one process per --name (the order of the log is one "
                "sequence); run several commands with different --name for several destinations"
            )
        application = resolve_application(options["application"])
        factory: Any
        if options["kafka"]:
            backend, destination = "kafka", options["kafka"]
            shown = destination
            factory = partial(
                kafka_transport, options["bootstrap_servers"], options["create_topic"]
            )
        elif options["amqp"] is not None:
            backend, destination = "amqp", options["routing_key"] or application.name
            shown = f"{options['amqp']}/{destination}"
            factory = partial(amqp_transport, options["amqp_url"], options["amqp"])
        else:
            backend, destination = "transport", options["destination"]
            shown = destination
            factory = partial(named_transport, options["transport"])
        forwarder = EventForwarder(
            application,
            factory,
            destination,
            name=options["name"] or forwarder_name(backend, shown),
            batch_size=options["batch_size"],
            raw=options["raw"],
            undecodable=options["undecodable"],
            poll_interval=options["poll_interval"],
        )
        return [lambda: forwarder]
