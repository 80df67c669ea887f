"""Reading DP figures from a chain of strategy wrappers, whatever the wrappers hold.

Flower's own DP wrappers are exercised end to end in tests/core/test_strategy.py; here
the reader meets the odd values a custom or broken wrapper may hold: it reports them as
unknown (None) instead of exporting them or raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

from flmon.security.dp import DpFigures, find_dp_strategy, read_dp


@dataclass
class Spent:
    epsilon: Any
    delta: Any


@dataclass
class AccountantConfig:
    max_epsilon: Any = None
    target_delta: Any = None


class Accountant:
    def __init__(self, spent: Spent, config: AccountantConfig | None = None) -> None:
        self.spent = spent
        self.config = config

    def get_privacy_spent(self) -> Spent:
        return self.spent


class Wrapper:
    """A strategy wrapper holding ``strategy`` and, if given, DP parameters."""

    def __init__(self, strategy: object = None, **attrs: Any) -> None:
        self.strategy = strategy
        for name, value in attrs.items():
            setattr(self, name, value)


def test_no_dp_wrapper_in_the_chain_reads_as_none() -> None:
    chain = Wrapper(Wrapper(Wrapper(None)))
    assert find_dp_strategy(chain) is None and read_dp(chain) is None
    assert read_dp(None) is None and read_dp(object()) is None


def test_the_first_dp_wrapper_in_the_chain_is_read() -> None:
    inner = Wrapper(None, noise_multiplier=0.5, clipping_norm=2.0)
    outer = Wrapper(Wrapper(inner), noise_multiplier=1.5, clipping_norm=3.0)
    assert find_dp_strategy(Wrapper(outer)) is outer
    assert find_dp_strategy(Wrapper(Wrapper(inner))) is inner
    # a wrapper with only one of the two is not a DP wrapper
    assert find_dp_strategy(Wrapper(inner, noise_multiplier=9.0)) is inner
    assert find_dp_strategy(Wrapper(inner, clipping_norm=9.0)) is inner


def test_a_chain_deeper_than_sixteen_is_not_followed() -> None:
    dp = Wrapper(None, noise_multiplier=1.0, clipping_norm=1.0)
    chain: object = dp
    for _ in range(15):
        chain = Wrapper(chain)
    assert find_dp_strategy(chain) is dp  # the 16th strategy of the chain
    assert find_dp_strategy(Wrapper(chain)) is None


def test_a_cyclic_chain_ends() -> None:
    a = Wrapper(None)
    a.strategy = Wrapper(a)
    assert find_dp_strategy(a) is None


def test_figures_of_a_wrapper_with_an_accountant() -> None:
    dp = Wrapper(None, noise_multiplier=1.1, clipping_norm=0.5,
                 accountant=Accountant(Spent(3.25, 1e-6), AccountantConfig(8.0, 1e-5)))
    assert read_dp(Wrapper(dp)) == DpFigures(epsilon=3.25, delta=1e-6, budget=8.0,
                                             noise_multiplier=1.1, clipping_norm=0.5)


def test_delta_falls_back_to_the_target_delta() -> None:
    dp = Wrapper(None, noise_multiplier=1, clipping_norm=2,
                 accountant=Accountant(Spent(0.5, None), AccountantConfig(None, 1e-5)))
    figures = read_dp(dp)
    assert figures == DpFigures(epsilon=0.5, delta=1e-5, budget=None, noise_multiplier=1.0,
                                clipping_norm=2.0)
    assert isinstance(figures.noise_multiplier, float)  # type: ignore[union-attr]


def test_without_an_accountant_only_the_parameters_are_known() -> None:
    figures = read_dp(Wrapper(None, noise_multiplier=0.3, clipping_norm=10.0))
    assert figures == DpFigures(epsilon=None, delta=None, budget=None, noise_multiplier=0.3,
                                clipping_norm=10.0)


@pytest.mark.parametrize("odd", [None, True, False, "1.0", math.nan, math.inf, -math.inf,
                                 [1.0], object()])
def test_values_that_are_not_finite_numbers_read_as_unknown(odd: Any) -> None:
    dp = Wrapper(None, noise_multiplier=odd, clipping_norm=odd,
                 accountant=Accountant(Spent(odd, odd), AccountantConfig(odd, odd)))
    assert read_dp(dp) == DpFigures(None, None, None, None, None)


class Bare:
    """An object with none of the attributes the reader looks for."""


class BareAccountant:
    def get_privacy_spent(self) -> Bare:
        return Bare()


def test_an_accountant_without_the_usual_attributes_reads_as_unknown() -> None:
    dp = Wrapper(None, noise_multiplier=1.0, clipping_norm=1.0, accountant=BareAccountant())
    assert read_dp(dp) == DpFigures(None, None, None, 1.0, 1.0)
    bare_config = Accountant(Spent(1.0, None), Bare())  # type: ignore[arg-type]
    dp = Wrapper(None, noise_multiplier=1.0, clipping_norm=1.0, accountant=bare_config)
    assert read_dp(dp) == DpFigures(1.0, None, None, 1.0, 1.0)
