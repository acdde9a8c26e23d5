"""The ``kafka`` package of the test app: its ``consumers``/``connectors`` are autodiscovered."""
