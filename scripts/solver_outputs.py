"""Record every method's outputs on small cases, or compare them with a recording: the check that a
refactor leaves the default variants bit-identical.

    python scripts/solver_outputs.py record OUT.pt
    python scripts/solver_outputs.py compare OUT.pt      # exits 1 when any output differs

Cases: each method on box inpainting, x4 SR and (where it applies) phase retrieval and blind low light, on
the analytic Gaussian prior (16 px) and the bundled prior (64 px), a few steps each, batch 2, fixed seeds.
"""

from __future__ import annotations

import sys

import torch

from hrdis import GaussianPrior, load_prior, solve
from hrdis.solvers import METHODS
from hrdis.tasks import get_task

TASKS = ("inpaint-box", "sr4", "phase-retrieval", "blind-lowlight")
NOISES = (None, "gaussian:0.05")


def cases():
    torch.set_num_threads(1)
    priors = {"gaussian16": GaussianPrior(0.1, 0.5, image_size=16), "bundled64": load_prior("bundled")}
    for prior_name, prior in priors.items():
        size = prior.image_size
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
        for task_name in TASKS:
            task = get_task(task_name)
            op = task.make_operator(size, 0)
            y = op(x)
            for method_name, method in METHODS.items():
                if not method.applies_to(op):
                    continue
                for noise in NOISES:
                    if noise and prior_name == "bundled64":
                        continue
                    steps = {"steps": 6 if prior_name == "bundled64" else 12} if method_name != "bicubic" else {}
                    key = f"{prior_name}/{task_name}/{method_name}/{noise}"
                    yield key, lambda: solve(y, op, prior, method_name, task=task, noise=noise, seed=3, restarts=1,
                                             **steps)


def main(argv: list[str]) -> int:
    mode, path = argv
    results = {}
    for key, run in cases():
        try:
            results[key] = run().image
        except ValueError as e:  # a method that refuses this case refuses it the same way each time
            results[key] = f"ValueError: {e}"
    if mode == "record":
        torch.save(results, path)
        print(f"recorded {len(results)} cases to {path}")
        return 0
    recorded = torch.load(path, weights_only=True)
    bad = 0
    for key in sorted(set(recorded) | set(results)):
        a, b = recorded.get(key), results.get(key)
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)) or a == b
        if not same:
            bad += 1
            diff = (a - b).abs().max().item() if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) else "-"
            print(f"DIFFERS {key}: max abs {diff}")
    print(f"{len(results) - bad} of {len(results)} cases identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
