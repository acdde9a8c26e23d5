"""Models the kafka tests and the demo use."""
