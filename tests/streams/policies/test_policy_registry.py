"""The one generic registry: a name maps to one class, which carries the name."""

from __future__ import annotations

import pytest

from streams.policies.policy_registry import ROUTERS, SCALERS, Registry, parse_policy


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


@pytest.mark.parametrize(("spec", "label"), [
    ("preserve", "preserve:preserve"),  # PreServe's router and scaler (was: fixed(n=1), a surprise in the README)
    ("preserve(predictor=model)", "preserve(predictor=model):preserve"),
    ("least-kv", "least-kv:fixed"),
    ("preserve:reactive(up=0.8)", "preserve:reactive(up=0.8)"),
])
def test_a_bare_name_means_the_policy_of_that_name_where_there_is_one(spec: str, label: str) -> None:
    assert parse_policy(spec).label == label
