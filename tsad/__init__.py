"""The `tsad` command: one entry point wiring the subcommands of the trainer, the detector and the stream tools."""
