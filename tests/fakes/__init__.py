"""Loopback stand-ins for the services the sinks talk to; used by the tests and benchmarks."""
