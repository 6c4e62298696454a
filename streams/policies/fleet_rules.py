"""Fleet rules that every driver applies the same way: which instances leave on a scale-down, and how an
over-long request is served. Written once here; the simulator, the live instance managers and the control
agents' fleet view all call these (before, three copies disagreed on tie-breaks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["scale_down_victims", "served_lengths", "served_prompt"]

T = TypeVar("T")


def scale_down_victims(provisioned: Sequence[T], n: int, is_starting: Callable[[T], bool],
                       load: Callable[[T], int]) -> list[T]:
    """The ``n`` instances to remove from ``provisioned`` (given in start order): starting ones first, newest
    first (they cost nothing yet), then the least-loaded ready ones, the newest first on equal load (the older
    ones have warm caches)."""
    order = {id(x): k for k, x in enumerate(provisioned)}
    starting = sorted((x for x in provisioned if is_starting(x)), key=lambda x: -order[id(x)])
    ready = sorted((x for x in provisioned if not is_starting(x)), key=lambda x: (load(x), -order[id(x)]))
    return (starting + ready)[:max(0, n)]


def served_lengths(prompt: int, output: int | None, max_model_len: int) -> tuple[int, int, bool]:
    """``(prompt, output, truncated)`` as a vLLM-style engine serves a request: at least one prompt token and
    one output token; over ``max_model_len`` the prompt keeps at most ``max_model_len - 1`` tokens and the
    output stops at the length limit (vLLM's finish_reason=length)."""
    prompt, out = max(1, int(prompt)), max(1, int(output or 1))
    if prompt + out <= max_model_len:
        return prompt, out, False
    prompt = min(prompt, max_model_len - 1)
    return prompt, max_model_len - prompt, True


def served_prompt(prompt: int, max_model_len: int) -> int:
    """The prompt length :func:`served_lengths` serves, whatever the output: what a policy is shown (the
    simulator and the live agents alike)."""
    return min(max(1, int(prompt)), max_model_len - 1)
