"""The ``flmon`` command line."""
