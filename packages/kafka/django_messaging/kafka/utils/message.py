"""Reading Kafka message headers."""

from __future__ import annotations

from typing import Any


class Header:
    """``Header.get(msg.headers(), "name")``: the first value (bytes) or ``None``;
    ``Header.list(...)``: every value of a repeated header."""

    @staticmethod
    def list(headers: list[tuple[str, Any]] | None, name: str) -> list[Any]:
        return [value for key, value in headers or [] if key == name]

    @staticmethod
    def get(headers: list[tuple[str, Any]] | None, name: str) -> Any:
        for key, value in headers or []:
            if key == name:
                return value
        return None
