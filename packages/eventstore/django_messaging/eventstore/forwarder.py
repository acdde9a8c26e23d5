"""Events out of the store: an application's notification log forwarded to a broker, in order.

:class:`EventForwarder` is the worker of ``manage.py forward_events``. It reads the log in pages
after its position and sends each page through a core transport (Kafka, AMQP, or one the
project names), the next page read and sent while the broker stores the one before
(:attr:`EventForwarder.pages_in_flight`). Once the broker confirmed every message of the oldest
page, it records the id of that page's last message as its position, with the tracking
recorder, in the event store's own database. A process that dies between a send and the record
sends the unrecorded messages again when it starts, never fewer and never out of order; each
message carries the same id every time (the ``dop-msg-id`` header), so an idempotent consumer
applies it once.

A message is built by :func:`notification_message`: a JSON body any consumer can read (the
event's topic and type, originator id and version, timestamp, and its state decoded with the
application's own cipher, compressor and transcoder), or, with ``raw=True``, the stored bytes
unchanged with the same facts in headers.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps as django_apps
from django.utils.module_loading import import_string
from eventsourcing import persistence as es
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Notification, Tracking, Transcoder

from django_messaging.core import serializers
from django_messaging.core.exceptions import ConfigurationError, MessagingError
from django_messaging.core.reconnect import Backoff
from django_messaging.core.transports import OutgoingMessage, Transport
from django_messaging.core.transports.kafka import KafkaTransport
from django_messaging.core.worker import Worker
from django_messaging.eventstore.errors import outage
from django_messaging.eventstore.recorders import (
    DjangoApplicationRecorder,
    DjangoTrackingRecorder,
)

__all__ = [
    "EventForwarder",
    "UndecodableEvent",
    "forwarder_name",
    "message_id",
    "notification_message",
    "resolve_application",
]

logger = logging.getLogger(__name__)

#: The header every message carries its id in: what an idempotent Kafka consumer of
#: django-messaging-kafka reads (its ``INBOX_ID_HEADERS``), the outbox relay's header too.
MESSAGE_ID_HEADER = "dop-msg-id"
#: What ``undecodable`` may be: stop at the event, or forward its stored bytes flagged.
UNDECODABLE_CHOICES = ("stop", "raw")

_JSON = serializers.JSONSerializer()
_RECONNECT = Backoff(initial=0.5, cap=30.0)
_DATABASE = Backoff(initial=0.25, cap=5.0)


class UndecodableEvent(MessagingError):
    """An event's stored state cannot be decoded with the application's mapper (a wrong or
    missing cipher key, a type the transcoder does not know, corrupt bytes)."""


def message_id(application_name: str, notification_id: int) -> str:
    """``"<application>:<notification id>"``: the same on every resend, and unique across
    applications (each application's ids start at 1) in one consumer's inbox."""
    return f"{application_name}:{notification_id}"


def forwarder_name(backend: str, destination: str) -> str:
    """The default tracking name of a forwarder: ``forward:<backend>:<destination>``; the
    position is kept per name and application."""
    return f"forward:{backend}:{destination}"[:150]


def _revive(value: Any, names: dict[str, Any]) -> Any:
    """What ``JSONTranscoder``'s object hook makes of a parsed value: inner objects first, then
    an object of exactly the keys ``_type_`` and ``_data_`` decoded by the transcoding its
    ``_type_`` names (a name not registered raises, as the transcoder does)."""
    if type(value) is dict:
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                value[key] = _revive(item, names)
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return names[value["_type_"]].decode(value["_data_"])
        return value
    for index, item in enumerate(value):
        if type(item) is dict or type(item) is list:
            value[index] = _revive(item, names)
    return value


#: The C scanner, without an object hook.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_WHITESPACE = " \t\n\r"


def _json_decoder(transcoder: Transcoder) -> Callable[[bytes], Any] | None:
    """For eventsourcing's own ``JSONTranscoder`` (its decoder not replaced): a decoding of
    stored state that gives the very objects ``transcoder.decode`` gives, at less cost (the C
    scanner parses, custom types are revived in one walk). It raises where the transcoder may
    decode differently or fail; the caller then asks the transcoder itself. Other transcoders:
    ``None``."""
    if type(transcoder) is not JSONTranscoder:
        return None
    decoder = getattr(transcoder, "decoder", None)
    if (
        type(decoder) is not json.JSONDecoder
        or decoder.object_hook != transcoder._decode_obj
        or decoder.object_pairs_hook is not None
        or decoder.parse_float is not float
        or decoder.parse_int is not int
        or not decoder.strict
    ):
        return None
    names = transcoder.names
    scan = _SCAN

    def decode(data: bytes) -> Any:
        text = data.decode("utf8")
        value, end = scan(text, 0)  # no leading whitespace: else StopIteration, the slow way
        if end != len(text) and text[end:].strip(_WHITESPACE):
            raise ValueError("extra data")
        return _revive(value, names)

    return decode


def _decoded_state(
    application: Application[Any],
    notification: Notification,
    fast: Callable[[bytes], Any] | None = None,
) -> dict[str, Any]:
    mapper = application.mapper
    state = notification.state
    try:
        if mapper.cipher:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor:
            state = mapper.compressor.decompress(state)
        decoded: Any = _NOT_DECODED
        if fast is not None:
            try:
                decoded = fast(state)
            except Exception:
                decoded = _NOT_DECODED  # decoded (or refused) by the transcoder below
        if decoded is _NOT_DECODED:
            decoded = mapper.transcoder.decode(state)
    except Exception as exc:
        raise UndecodableEvent(
            f"{application.name} notification {notification.id} ({notification.topic}, "
            f"originator {notification.originator_id} v{notification.originator_version}): "
            f"its state cannot be decoded: {exc!r}"
        ) from exc
    if not isinstance(decoded, dict):
        raise UndecodableEvent(
            f"{application.name} notification {notification.id} ({notification.topic}): its "
            f"state decodes to {type(decoded).__name__}, not an object"
        )
    return decoded


_NOT_DECODED = object()


def _base_headers(application_name: str, notification: Notification) -> dict[str, str]:
    return {
        MESSAGE_ID_HEADER: message_id(application_name, notification.id),
        "dop-application": application_name,
        "dop-notification-id": str(notification.id),
        "dop-event-topic": notification.topic,
        "dop-originator-id": str(notification.originator_id),
        "dop-originator-version": str(notification.originator_version),
    }


def notification_message(
    application: Application[Any],
    notification: Notification,
    destination: str,
    *,
    raw: bool = False,
    undecodable: str = "stop",
) -> OutgoingMessage:
    """The message for one notification of ``application``'s log.

    JSON body (``raw=False``)::

        {"id": 7, "application": "TrainingSchool",
         "topic": "mysite.domain:Dog.TrickAdded", "type": "Dog.TrickAdded",
         "originator_id": "…", "originator_version": 3,
         "timestamp": "2026-12-06T09:00:00.123456+00:00", "state": {"trick": "sit"}}

    An event whose state cannot be decoded raises :class:`UndecodableEvent`, unless
    ``undecodable="raw"``: then its stored bytes go unchanged, flagged by the header
    ``dop-decode-error``. The record key (Kafka) is the originator id, so one aggregate's
    events keep their order on every partitioning.
    """
    name = application.name
    headers = _base_headers(name, notification)
    key = str(notification.originator_id)
    if not raw:
        try:
            state = _decoded_state(
                application, notification, _json_decoder(application.mapper.transcoder)
            )
            timestamp = state.pop("timestamp", None)
            body = _JSON.dumps(
                {
                    "id": notification.id,
                    "application": name,
                    "topic": notification.topic,
                    "type": notification.topic.rpartition(":")[2],
                    "originator_id": key,
                    "originator_version": notification.originator_version,
                    "timestamp": timestamp,
                    "state": state,
                }
            )
        except (UndecodableEvent, serializers.SerializerError) as exc:
            if undecodable != "raw":
                if isinstance(exc, UndecodableEvent):
                    raise
                raise UndecodableEvent(
                    f"{name} notification {notification.id} ({notification.topic}): its "
                    f"decoded state cannot be written as JSON: {exc}"
                ) from exc
            headers["dop-decode-error"] = str(exc)[:500]
        else:
            return OutgoingMessage(
                key=notification.id,
                destination=destination,
                body=body,
                headers=headers,
                content_type="application/json",
                ordering_key=key,
            )
    return OutgoingMessage(
        key=notification.id,
        destination=destination,
        body=bytes(notification.state),
        headers=headers,
        content_type="application/octet-stream",
        ordering_key=key,
    )


class _KafkaMessages:
    """:func:`notification_message` for a transport that takes headers as bytes: the same
    body, key and headers (in the same order), the constant parts encoded once and no
    headers dictionary built. An event that is not forwarded as JSON the ordinary way
    (undecodable, not JSON-writable) goes through :func:`notification_message` itself."""

    def __init__(
        self, application: Application[Any], destination: str, *, raw: bool, undecodable: str
    ) -> None:
        self.application = application
        self.name = application.name
        self.destination = destination
        self.raw = raw
        self.undecodable = undecodable
        self._application_header = ("dop-application", self.name.encode())
        self._id_prefix = f"{self.name}:"
        self._topics: dict[str, tuple[bytes, str]] = {}
        self._originator: tuple[Any, str, bytes] = (None, "", b"")
        self._decode = _json_decoder(application.mapper.transcoder)

    def message(self, notification: Notification) -> OutgoingMessage:
        name = self.name
        nid = notification.id
        originator = notification.originator_id
        if originator == self._originator[0]:  # an aggregate's events sit side by side
            key, raw_key = self._originator[1:]
        else:
            key = str(originator)
            raw_key = key.encode()
            self._originator = (originator, key, raw_key)
        nid_text = str(nid)
        version = notification.originator_version
        topic = notification.topic
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = (topic.encode(), topic.rpartition(":")[2])
        topic_bytes, event_type = known
        headers = [
            (MESSAGE_ID_HEADER, (self._id_prefix + nid_text).encode()),
            self._application_header,
            ("dop-notification-id", nid_text.encode()),
            ("dop-event-topic", topic_bytes),
            ("dop-originator-id", raw_key),
            ("dop-originator-version", str(version).encode()),
        ]
        if self.raw:
            body = bytes(notification.state)
            content_type = "application/octet-stream"
        else:
            try:
                state = _decoded_state(self.application, notification, self._decode)
                body = _JSON.dumps(
                    {
                        "id": nid,
                        "application": name,
                        "topic": topic,
                        "type": event_type,
                        "originator_id": key,
                        "originator_version": version,
                        "timestamp": state.pop("timestamp", None),
                        "state": state,
                    }
                )
            except (UndecodableEvent, serializers.SerializerError):
                return notification_message(
                    self.application,
                    notification,
                    self.destination,
                    undecodable=self.undecodable,
                )
            content_type = "application/json"
        # Positional (a frozen dataclass's keyword call costs more): key, destination, body,
        # headers, content_type, ordering_key, raw_key, raw_headers.
        return OutgoingMessage(nid, self.destination, body, {}, content_type, key, raw_key, headers)


def resolve_application(path: str) -> Application[Any]:
    """The application ``path`` names: ``"<app label>.<attribute>"`` of an installed app's
    ``AppConfig``, or the dotted path of an ``Application`` instance, an ``Application``
    subclass (constructed with :func:`~django_messaging.eventstore.conf.application_env`) or
    a function called without arguments that returns an instance."""
    from django_messaging.eventstore.conf import application_env

    owner, _, attribute = path.rpartition(".")
    if not owner:
        raise ConfigurationError(
            f"{path!r}: name an application as '<app label>.<attribute>' or "
            "'dotted.path.to.Application'"
        )
    found: Any
    config = next((c for c in django_apps.get_app_configs() if owner in (c.label, c.name)), None)
    if config is not None and hasattr(config, attribute):
        found = getattr(config, attribute)
    else:
        try:
            found = import_string(path)
        except ImportError as exc:
            raise ConfigurationError(
                f"{path!r} is neither an installed app's AppConfig attribute nor importable: {exc}"
            ) from exc
    if isinstance(found, type) and issubclass(found, Application):
        found = found(env=application_env())
    elif not isinstance(found, Application | type) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise ConfigurationError(f"{path!r}: calling it for the application failed: {exc!r}")
    if not isinstance(found, Application):
        raise ConfigurationError(
            f"{path!r} gave {type(found).__name__}, not an eventsourcing Application"
        )
    if not isinstance(found.recorder, DjangoApplicationRecorder):
        raise ConfigurationError(
            f"the application {found.name!r} does not store its events with "
            "django_messaging.eventstore (PERSISTENCE_MODULE): its recorder is "
            f"{type(found.recorder).__name__}"
        )
    return found


@dataclass
class _Retry:
    """When to try again after a failure, and how many failed in a row."""

    backoff: Backoff
    attempt: int = 0
    at: float = 0.0

    def failed(self) -> float:
        self.attempt += 1
        delay = self.backoff.delay(self.attempt)
        self.at = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.attempt, self.at = 0, 0.0


class EventForwarder(Worker):
    """Forwards one application's notification log to one destination of one transport.

    ``application``: the application, or a callable returning it (built in the worker's
    process). ``transport``: a callable returning a new, not yet open, core
    :class:`~django_messaging.core.transports.Transport`. ``name``: the tracking name the
    position is recorded under (one forwarder process per name).
    """

    name = "forward_events"
    #: Pages sent before the oldest is confirmed: the next page is read, built and sent while
    #: the broker stores the one before, so neither side waits for the other.
    pages_in_flight = 2

    def __init__(
        self,
        application: Application[Any] | Callable[[], Application[Any]],
        transport: Callable[[], Transport],
        destination: str,
        *,
        name: str,
        batch_size: int = 500,
        raw: bool = False,
        undecodable: str = "stop",
        poll_interval: float = 0.5,
        confirm_timeout: float = 30.0,
        reconnect: Backoff = _RECONNECT,
        database: Backoff = _DATABASE,
    ) -> None:
        if undecodable not in UNDECODABLE_CHOICES:
            raise ValueError(f"undecodable must be one of {UNDECODABLE_CHOICES}")
        self._application_source = application
        self._transport_factory = transport
        self.destination = destination
        self.tracking_name = name
        self.batch_size = batch_size
        self.raw = raw
        self.undecodable = undecodable
        self.poll_interval = poll_interval
        self.confirm_timeout = confirm_timeout
        self._broker = _Retry(reconnect)
        self._database = _Retry(database)
        self.application: Application[Any] | None = None
        self.transport: Transport | None = None
        self.tracking: DjangoTrackingRecorder | None = None
        #: The last notification id the broker confirmed and the tracking table holds.
        self.position: int | None = None
        self.forwarded = 0
        #: Pages sent and not yet recorded, oldest first, and the keys of theirs the broker
        #: confirmed so far.
        self._inflight: deque[list[OutgoingMessage]] = deque()
        self._confirmed: set[Hashable] = set()
        self._kafka_messages: _KafkaMessages | None = None

    def __repr__(self) -> str:
        return f"<EventForwarder {self.tracking_name!r} -> {self.destination!r}>"

    # Worker ----------------------------------------------------------------------------------
    def start(self) -> None:
        source = self._application_source
        application = source if isinstance(source, Application) else source()
        recorder = application.recorder
        if not isinstance(recorder, DjangoApplicationRecorder):
            raise ConfigurationError(
                f"the application {application.name!r} does not store its events with "
                "django_messaging.eventstore"
            )
        self.application = application
        self.tracking = DjangoTrackingRecorder(
            self.tracking_name,
            using=recorder.using,
            originator_id_type=recorder.originator_id_type,
            tables=recorder.tables,
        )
        self.transport = self._transport_factory()

    def stop(self) -> None:
        # What is in flight is confirmed and recorded before the transport closes, so a
        # graceful stop sends nothing twice on the next start.
        while self._inflight and self.transport is not None and self.transport.is_open():
            self._settle_oldest_page()
        if self.transport is not None:
            self.transport.close()

    def messages_handled(self) -> int | None:
        return self.forwarded

    def run_once(self) -> None:
        now = time.monotonic()
        wait = max(self._broker.at, self._database.at) - now
        if wait > 0:
            time.sleep(min(wait, 0.5))
            return
        if not self._connected():
            self._drop_inflight()
            return
        if self.position is None and not self._read_position():
            return
        while len(self._inflight) < self.pages_in_flight and self._send_next_page():
            pass
        if self._inflight:
            self._settle_oldest_page()

    # the steps --------------------------------------------------------------------------------
    @property
    def _app(self) -> Application[Any]:
        assert self.application is not None, "start() first"
        return self.application

    def _page(self, after: int) -> Sequence[Notification]:
        return self._app.recorder.select_notifications(
            start=after, limit=self.batch_size, inclusive_of_start=False
        )

    def _read_position(self) -> bool:
        try:
            self.position = self._recorded_position()
        except (es.OperationalError, es.InterfaceError) as exc:
            if not outage(exc):
                raise
            self._database_away(exc)
            return False
        logger.info(
            "%s: forwarding %s from notification %d to %s",
            self.tracking_name,
            self._app.name,
            self.position + 1,
            self.destination,
        )
        return True

    def _send_next_page(self) -> bool:
        """Read, build and send the page after the last message sent; ``False`` when nothing
        was sent. With pages in flight, a page that cannot be read or whose first event cannot
        be decoded is left for later: the error is raised (or waited out) once everything
        before it is recorded."""
        inflight = self._inflight
        after = int(str(inflight[-1][-1].key)) if inflight else self.position
        assert after is not None
        try:
            page = self._page(after)
            messages = self._messages(page, quiet=bool(inflight)) if page else []
        except (es.OperationalError, es.InterfaceError) as exc:
            if inflight:
                return False
            if not outage(exc):
                raise
            self._database_away(exc)
            return False
        if not inflight:
            self._database.succeeded()
        if not page:
            if not inflight:
                time.sleep(self.poll_interval)
            return False
        if not messages:
            return False
        transport = self.transport
        assert transport is not None
        unsent = transport.send(messages)
        inflight.append(messages)
        if unsent:
            self._failed(0, "connection lost while sending")
            return False
        return True

    def _recorded_position(self) -> int:
        assert self.tracking is not None
        return self.tracking.max_tracking_id(self._app.name) or 0

    def _connected(self) -> bool:
        transport = self.transport
        assert transport is not None, "start() first"
        if transport.is_open():
            return True
        try:
            transport.open()
        except Exception as exc:
            delay = self._broker.failed()
            log = logger.warning if self._broker.attempt == 1 else logger.debug
            log(
                "%s: cannot connect to the broker (%s); trying again in %.1fs",
                self.tracking_name,
                exc,
                delay,
            )
            return False
        if self._broker.attempt:
            logger.info("%s: connected to the broker again", self.tracking_name)
        return True

    def _database_away(self, exc: BaseException) -> None:
        delay = self._database.failed()
        log = logger.warning if self._database.attempt == 1 else logger.debug
        log("%s: the database is away (%s); trying again in %.1fs", self.tracking_name, exc, delay)

    def _messages(self, page: Sequence[Notification], quiet: bool = False) -> list[OutgoingMessage]:
        """The page's messages, up to (not including) an event that cannot be decoded; that
        one raises when it is first in the page, so everything before it is forwarded first."""
        messages: list[OutgoingMessage] = []
        encoded = self._encoded_headers()
        for notification in page:
            try:
                messages.append(
                    encoded.message(notification)
                    if encoded is not None
                    else notification_message(
                        self._app,
                        notification,
                        self.destination,
                        raw=self.raw,
                        undecodable=self.undecodable,
                    )
                )
            except UndecodableEvent as exc:
                if messages or quiet:
                    break
                logger.error(
                    "%s: stopped at %s. Nothing after it is forwarded: fix the application's "
                    "environment (CIPHER_KEY, TRANSCODER_TOPIC, ...) and start again, or "
                    "forward undecodable events as their stored bytes (--undecodable raw).",
                    self.tracking_name,
                    exc,
                )
                raise
        return messages

    def _encoded_headers(self) -> _KafkaMessages | None:
        """For core's Kafka transport, which takes headers as bytes: what builds those
        messages, their constant parts encoded once."""
        if not isinstance(self.transport, KafkaTransport):
            return None
        if self._kafka_messages is None:
            self._kafka_messages = _KafkaMessages(
                self._app, self.destination, raw=self.raw, undecodable=self.undecodable
            )
        return self._kafka_messages

    def _settle_oldest_page(self) -> None:
        """Wait until the broker confirmed every message of the oldest page in flight (or an
        error, or ``confirm_timeout``), then record the last one as the position."""
        transport = self.transport
        assert transport is not None and self.tracking is not None
        messages = self._inflight[0]
        confirmed = self._confirmed
        pending = {m.key for m in messages}
        pending.difference_update(confirmed)
        error: str | None = None
        deadline = time.monotonic() + self.confirm_timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = f"no confirmation within {self.confirm_timeout}s"
                break
            polled = transport.poll(min(remaining, 0.5))
            confirmed.update(polled.confirmed)
            pending.difference_update(polled.confirmed)
            if pending.intersection(polled.rejected):
                error = polled.error or "refused by the broker"
                break
            if polled.lost:
                error = polled.error or "connection lost"
                break
        done = 0  # the confirmed prefix: nothing is recorded past a message not confirmed
        while done < len(messages) and messages[done].key in confirmed:
            done += 1
        if done:
            last = int(str(messages[done - 1].key))
            try:
                self.tracking.insert_tracking(Tracking(self._app.name, last))
            except (es.OperationalError, es.InterfaceError) as exc:
                if not outage(exc):
                    raise
                # Sent but not recorded: sent again once the database is back (same ids).
                self._database_away(exc)
                self.position = None
                self._drop_inflight()
                return
            except es.IntegrityError:
                # Another process recorded this position or a later one under this name.
                logger.error(
                    "%s: the position %d is recorded already: is another forward_events "
                    "running under this name? Reading the position again.",
                    self.tracking_name,
                    last,
                )
                self.position = None
                self._drop_inflight()
                return
            self.position = last
            self.forwarded += done
            logger.debug("%s: forwarded up to notification %d", self.tracking_name, last)
        if error is None:
            self._inflight.popleft()
            confirmed.difference_update(m.key for m in messages)
            self._broker.succeeded()
            return
        self._failed(done, error)

    def _failed(self, done: int, error: str) -> None:
        """The oldest page in flight is confirmed up to ``done`` messages: the rest, and every
        page after it, is sent again from the position once the broker is back."""
        unconfirmed = sum(map(len, self._inflight)) - done
        self._drop_inflight()
        assert self.transport is not None
        self.transport.close()
        delay = self._broker.failed()
        log = logger.warning if self._broker.attempt == 1 else logger.debug
        log(
            "%s: %d messages not confirmed from notification %d (%s); sending again from "
            "there in %.1fs",
            self.tracking_name,
            unconfirmed,
            (self.position or 0) + 1,
            error,
            delay,
        )

    def _drop_inflight(self) -> None:
        self._inflight.clear()
        self._confirmed.clear()
