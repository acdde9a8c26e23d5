from __future__ import annotations

import asyncio
import threading

from django_messaging.core import is_suppressed, suppress, unsuppress
from django_messaging.core.suppression import suppressed_destinations


def test_nothing_is_suppressed_by_default() -> None:
    assert not is_suppressed("a")
    assert not is_suppressed()


def test_context_manager_all_and_list() -> None:
    with suppress():
        assert is_suppressed("a") and is_suppressed()
    with suppress(["a"]):
        assert is_suppressed("a") and not is_suppressed("b") and not is_suppressed()
    assert not is_suppressed("a")


def test_decorator_forms() -> None:
    @suppress
    def bare() -> bool:
        return is_suppressed("x")

    @suppress()
    def called() -> bool:
        return is_suppressed("x")

    @suppress(["x"])
    def listed() -> tuple[bool, bool]:
        return is_suppressed("x"), is_suppressed("y")

    assert bare() and called()
    assert listed() == (True, False)
    assert not is_suppressed("x")


def test_nesting_adds() -> None:
    with suppress(["a"]), suppress(["b"]):
        assert suppressed_destinations() == {"a", "b"}
    assert suppressed_destinations() == frozenset()


def test_decorated_function_inside_suppress_all_keeps_everything_suppressed() -> None:
    """django-kafka: ``Suppression`` computes its topic list when the function is decorated, so a
    function decorated ``@suppress(["A"])`` called inside ``with suppress():`` un-suppressed B."""

    @suppress(["A"])
    def produce_b() -> bool:
        return is_suppressed("B")

    with suppress():
        assert produce_b() is True
    assert produce_b() is False


def test_decorator_evaluates_on_each_call() -> None:
    @suppress(["A"])
    def names() -> frozenset[str] | None:
        return suppressed_destinations()

    with suppress(["B"]):
        assert names() == {"A", "B"}
    assert names() == {"A"}


def test_unsuppress_lifts_everything_then_restores() -> None:
    with suppress():
        with unsuppress():
            assert not is_suppressed("a")
        assert is_suppressed("a")

    @unsuppress
    def inner() -> bool:
        return is_suppressed("a")

    with suppress(["a"]):
        assert inner() is False
        assert is_suppressed("a")


def test_exceptions_restore_state() -> None:
    try:
        with suppress():
            raise ValueError
    except ValueError:
        pass
    assert not is_suppressed()


def test_threads_do_not_see_each_others_suppression() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def suppressed_thread() -> None:
        with suppress():
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=suppressed_thread)
    worker.start()
    assert entered.wait(5)
    other = threading.Thread(target=lambda: seen.append(is_suppressed("a")))
    other.start()
    other.join()
    release.set()
    worker.join()
    assert seen == [False]
    assert not is_suppressed("a")


def test_asyncio_tasks_are_isolated_and_async_functions_decorate() -> None:
    @suppress(["a"])
    async def suppressed_task(started: asyncio.Event, done: asyncio.Event) -> bool:
        started.set()
        await done.wait()
        return is_suppressed("a")

    async def plain_task() -> bool:
        return is_suppressed("a")

    async def main() -> tuple[bool, bool]:
        started, done = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(suppressed_task(started, done))
        await started.wait()
        second = await asyncio.create_task(plain_task())
        done.set()
        return await first, second

    assert asyncio.run(main()) == (True, False)
