"""Models the outbox tests and the demo use."""
