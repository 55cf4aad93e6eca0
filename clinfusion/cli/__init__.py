"""Command-line interface: ``clinfusion <command> ...`` (see :mod:`clinfusion.cli.main`)."""
