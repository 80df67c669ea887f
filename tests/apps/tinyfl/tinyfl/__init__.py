"""A tiny numpy federation instrumented with flmon."""
