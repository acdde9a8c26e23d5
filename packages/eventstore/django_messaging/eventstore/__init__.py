"""A Django ORM persistence module for the eventsourcing library."""

__version__ = "0.1.0"
