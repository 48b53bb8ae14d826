"""Timing one call in process, for the bench scripts that price a single operation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def per_call_us(call: Callable[[], Any], rounds: int) -> float:
    """Mean µs of call over rounds calls (the scripts print figures, never assert them)."""
    start = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - start) / rounds * 1e6
