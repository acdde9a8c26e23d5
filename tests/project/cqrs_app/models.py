"""Models the cqrs tests and the demo use."""
