"""Cleanup planning (pure): keep N newest besides what is protected, delete the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retraining_operator.reconcile.cleanup import OwnedResource, plan_cleanup
from unit.rollout_policies import T0


def owned(prefix: str, count: int) -> list[OwnedResource]:
    return [OwnedResource(f"{prefix}{i}", T0 + timedelta(hours=i)) for i in range(count)]


def test_keeps_the_n_newest_and_everything_protected() -> None:
    plan = plan_cleanup(
        models=owned("m", 6),
        configs=owned("c", 6),
        protected_models={"m0"},  # the oldest one serves
        protected_configs={"c0", "c1"},
        retain=2,
    )
    assert plan.delete_models == ("m3", "m2", "m1")
    assert set(plan.keep_models) == {"m0", "m5", "m4"}
    assert plan.delete_configs == ("c3", "c2")
    assert set(plan.keep_configs) == {"c0", "c1", "c5", "c4"}


def test_retain_zero_keeps_only_what_is_protected() -> None:
    plan = plan_cleanup(
        models=owned("m", 3), configs=[], protected_models={"m2"}, protected_configs=set(),
        retain=0,
    )  # fmt: skip
    assert plan.keep_models == ("m2",)
    assert plan.delete_models == ("m1", "m0")


def test_fewer_than_n_deletes_nothing() -> None:
    plan = plan_cleanup(
        models=owned("m", 2), configs=owned("c", 2), protected_models=set(),
        protected_configs=set(), retain=3,
    )  # fmt: skip
    assert plan.delete_models == ()
    assert plan.delete_configs == ()


def test_negative_retain_is_refused() -> None:
    with pytest.raises(ValueError, match="retain"):
        plan_cleanup(models=[], configs=[], protected_models=(), protected_configs=(), retain=-1)
