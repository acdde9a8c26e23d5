"""Models the eventstore tests and the demo use."""
