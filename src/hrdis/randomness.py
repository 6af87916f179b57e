"""Where every solver's random numbers come from: one object, passed in, asked for each draw by its role.

- ``SeededNoise(seed, batch)``: the default. One CPU generator per image, so image b's draws depend only on
  its own seed, never on the batch it is solved in (a batch of B restores exactly as B single solves at
  seeds ``per_image_seeds(seed, B)``). Roles are ignored: the draws come in the order the solver asks.
- ``ReplayNoise(draws)``: recorded draws handed back by role (e.g. the noise of another implementation's
  run, to reproduce it number for number). Each role is its own queue, so a draw that the solver does not
  make (one whose weight is zero) only leaves its recording unused.

Roles used by the solvers: ``initial`` (x_T or another random start), ``fresh`` (HRDIS's fresh noise),
``x0_perturbation`` (HRDIS's sigma_x0 noise), ``step`` (a sampler's per-step noise; DAPS's re-noising,
DiffPIR's fresh-noise share), ``langevin`` (DAPS's Langevin noise, one draw per Langevin step), ``travel``
(DDNM+'s time-travel re-noising), and DDRM's per-case ``less_noisy`` and ``noisier`` draws in its official form.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Iterable, Protocol

import torch


class Randomness(Protocol):
    def randn(self, shape, device: torch.device | str | None = None, role: str = "step") -> torch.Tensor:
        """Standard normal noise of ``shape`` (first dimension: the batch)."""


def per_image_seeds(seed: int | list[int], batch: int) -> list[int]:
    """The seed of each image of a batch: an int s gives s, s + 1, ..., s + B - 1 (so image b of a batch
    solved with seed s equals a single solve with seed s + b); a list gives one seed per image."""
    if isinstance(seed, bool) or not isinstance(seed, (int, list, tuple)):
        raise ValueError(f"seed must be an integer or one integer per image, got {seed!r}")
    if isinstance(seed, int):
        return [seed + b for b in range(batch)]
    if len(seed) != batch or not all(isinstance(s, int) and not isinstance(s, bool) for s in seed):
        raise ValueError(f"seed lists must hold one integer per image ({batch}), got {list(seed)!r}")
    return list(seed)


class SeededNoise:
    """Gaussian noise drawn image by image from one CPU generator per image (see the module docstring)."""

    def __init__(self, seed: int | list[int], batch: int):
        self.seeds = per_image_seeds(seed, batch)
        self.generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.seeds]

    def randn(self, shape, device: torch.device | str | None = None, role: str = "step") -> torch.Tensor:
        """(B, ...) standard normal noise, drawn on the CPU (reproducible across devices), then moved."""
        shape = tuple(shape)
        if shape[0] != len(self.generators):
            raise ValueError(f"noise for a batch of {shape[0]} from {len(self.generators)} per-image generators")
        noise = torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in self.generators])
        return noise if device is None else noise.to(device)


class ReplayNoise:
    """Recorded draws, handed out per role in the order they were recorded.

    ``draws``: (role, tensor) pairs in recording order. A request must ask for as many numbers as the next
    recording of its role holds; the recording is reshaped to the requested shape (implementations lay the
    same numbers out differently, e.g. (B, 3 * H * W) against (B, 3, H, W)). Running out of a role, or a
    size mismatch, is an error: the replay would no longer be the recorded run."""

    def __init__(self, draws: Iterable[tuple[str, torch.Tensor]]):
        self.queues: dict[str, deque] = defaultdict(deque)
        for role, value in draws:
            self.queues[role].append(value)
        self.used: dict[str, int] = defaultdict(int)

    def randn(self, shape, device: torch.device | str | None = None, role: str = "step") -> torch.Tensor:
        shape = tuple(shape)
        if not self.queues[role]:
            raise ValueError(f"the replay has no more draws of role {role!r} (used {self.used[role]})")
        value = self.queues[role].popleft()
        self.used[role] += 1
        if value.numel() != torch.Size(shape).numel():
            raise ValueError(f"draw {self.used[role]} of role {role!r} holds {value.numel()} numbers, "
                             f"the solver asked for {shape}")
        value = value.reshape(shape).float()
        return value if device is None else value.to(device)


def randn(shape, source: "Randomness | torch.Generator | None", device=None, role: str = "step") -> torch.Tensor:
    """Standard normal noise of ``shape`` from a ``Randomness`` (e.g. per image) or a plain generator."""
    if hasattr(source, "randn"):
        return source.randn(shape, device, role)
    noise = torch.randn(tuple(shape), generator=source)
    return noise if device is None else noise.to(device)


def noise_source(seed: int | list[int], batch: int, randomness: Randomness | None) -> Randomness:
    """The randomness a solver draws from: the one given, else per-image seeded noise."""
    return randomness if randomness is not None else SeededNoise(seed, batch)
