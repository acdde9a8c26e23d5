"""Test utilities: capture what would be sent, deliver it to the real consumer code, in memory.

The broker-neutral parts live here, in core; each feature package adds its own capture and
delivery (``django_messaging.kafka.testing``, ``django_messaging.outbox.testing``,
``django_messaging.cqrs.testing``, ``django_messaging.eventstore.testing``) on top of them.

- :class:`MemoryTransport`: the core transport seam, in memory. What a relay sends through it
  is recorded and confirmed at once.
- :class:`SentMessage` and :class:`MessageLog`: what was sent, with assertions on destination,
  key, headers and the decoded body.
- :func:`committed`: run the ``on_commit`` callbacks of a block as its commit would, also
  inside the transaction a ``TestCase`` wraps around each test.

``pytest`` finds the fixtures of :mod:`django_messaging.testing.pytest` by itself (entry point
``pytest11``); ``django.test.TestCase`` users take the same objects as context managers.
"""

from django_messaging.testing.messages import MessageLog, SentMessage
from django_messaging.testing.transactions import committed
from django_messaging.testing.transport import MemoryTransport

__all__ = ["MemoryTransport", "MessageLog", "SentMessage", "committed"]
