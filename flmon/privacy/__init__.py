"""Privacy testing: what an honest-but-curious server (or anyone who sees the global
models) can infer about the clients' records from a federation's updates.

``run_privacy_test(example="healthcare", rounds=3)`` runs a reference app's federation
in this process without DP and with DP, attacks every update with membership inference,
and returns the figures (the same as ``flmon privacy-test --json``).
"""

from flmon.privacy.runner import PrivacyTestOptions, run_privacy_test

__all__ = ["PrivacyTestOptions", "run_privacy_test"]
