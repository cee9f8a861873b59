"""How a step is run: directly (the library, tests, the benchmark) or as a Prefect task (the flow
passes its own runner). A runner calls ``step(ctx, *inputs)`` and returns what the step returns;
it may add retries, timing or a dashboard entry, never change the result. Side effects: none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from preserve.pipeline.context import IngestContext

P = ParamSpec("P")
R = TypeVar("R")


class StepRunner(Protocol):
    def __call__(
        self, step: Callable[Concatenate[IngestContext, P], R], ctx: IngestContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...


def run_directly(
    step: Callable[Concatenate[IngestContext, P], R], ctx: IngestContext, /, *args: P.args, **kwargs: P.kwargs
) -> R:
    return step(ctx, *args, **kwargs)
