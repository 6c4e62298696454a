"""The one generic registry: a name maps to one class, which carries the name."""

from __future__ import annotations

import pytest

from streams.policies.policy_registry import ROUTERS, SCALERS, Registry


def test_a_class_registers_once_and_carries_its_name() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("a")
    class A:
        name = ""

    assert reg["a"] is A and A.name == "a"
    reg.register("a")(A)  # the same class again: fine (module re-import)
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a")(type("B", (), {}))


def test_every_policy_carries_the_name_it_is_registered_under() -> None:
    assert ROUTERS.kind == "router" and SCALERS.kind == "scaler"
    assert all(cls.name == name for reg in (ROUTERS, SCALERS) for name, cls in reg.items())
