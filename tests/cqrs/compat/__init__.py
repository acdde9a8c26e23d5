"""A django-cqrs service, run from its own virtualenv by test_compat.py (never imported here)."""
