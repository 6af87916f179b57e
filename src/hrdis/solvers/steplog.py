"""The bookkeeping every solver loop repeats: the timer, the progress bar, the per-step record (with the
PSNR against a reference when one is given), the per-step callback, and the final ``SolveResult``."""

from __future__ import annotations

import time
from typing import Callable

import torch
from tqdm import tqdm

from .base import SolveResult, psnr_tensor

# callback(info): info has "step", "t", "x" (the iterate after the step) and "x0" (the step's estimate)
StepCallback = Callable[[dict], None]


class StepLog:
    """Start it where the solve starts; ``steps(timesteps)`` iterates (step, t) under a progress bar;
    ``record`` after each step; ``result`` at the end (the elapsed time goes into it)."""

    def __init__(self, name: str, *, reference: torch.Tensor | None = None, progress: bool = False,
                 callback: StepCallback | None = None):
        self.name, self.reference, self.progress, self.callback = name, reference, progress, callback
        self.history: list[dict] = []
        self.start = time.perf_counter()

    def steps(self, timesteps):
        return enumerate(tqdm(timesteps, desc=self.name, disable=not self.progress, leave=False))

    def record(self, step: int, t, *, x: torch.Tensor | None = None, estimate: torch.Tensor | None = None,
               **terms) -> None:
        """One history entry {step, t, **terms, psnr of ``estimate`` (when a reference is given)};
        the callback sees the iterate ``x`` and the estimate."""
        entry = {"step": step, "t": t, **terms}
        if self.reference is not None and estimate is not None:
            entry["psnr"] = psnr_tensor(estimate.detach(), self.reference)
        self.history.append(entry)
        if self.callback is not None:
            self.callback({"step": step, "t": t, "x": None if x is None else x.detach(),
                           "x0": None if estimate is None else estimate.detach()})

    def result(self, image: torch.Tensor, init: torch.Tensor, *, nfe: int, backprop: bool, params: dict,
               extras: dict | None = None) -> SolveResult:
        return SolveResult(image=image, init=init, history=self.history, nfe=nfe, backprop=backprop,
                           method=self.name, params=params, seconds=time.perf_counter() - self.start,
                           extras=extras or {})
