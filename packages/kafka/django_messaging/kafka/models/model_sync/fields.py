"""Which columns a ``ModelSync`` carries: ``IncludeFields([...])`` or ``ExcludeFields([...])``.

Names are field names, attnames or columns (``"customer"``, ``"customer_id"``); ``"pk"`` is the
primary key.
"""

from __future__ import annotations

__all__ = ["ExcludeFields", "IncludeFields"]


class IncludeFields(list[str]):
    """Only these columns (the key columns are always carried as well)."""


class ExcludeFields(list[str]):
    """Every column but these."""
