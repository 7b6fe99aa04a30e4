"""The app layer: the command line, runtime wiring, doctor, metrics and logs, above the core and the adapters."""
