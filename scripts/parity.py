"""Replay reference runs of the official code through hrdis and report how far the results are apart.

    python scripts/parity.py FIXTURE.pt [FIXTURE.pt ...]
    python scripts/parity.py ../shared/fixtures/parity          # every fixture of a folder

A fixture (format ``hrdis-parity-fixture/1``, see its folder's README) holds one run of the official
HRDIS code (github deng-ai-lab/HRDIS, a fork of NVlabs/RED-diff) on a fixed network: the official config,
the measurement, the operator, every random draw with its role, the trajectory and the result. For each
fixture this script rebuilds the operator, the parameters and the network (the ``face64`` prior folder
beside the fixture), replays the recorded draws (``hrdis.randomness.ReplayNoise``) through the method's
official variant, and prints one line: the max abs and 99.9th-percentile difference of the result and of
the trajectory against the reference. It exits 1 when any fixture is outside the README's tolerance:

- samplers (DDIM, DDRM, PiGDM, DPS): max abs <= 1e-5 on the result and at every trajectory step;
- HRDIS, RED-diff (Adam amplifies round-off): max abs <= 1e-4, or, where the arithmetic is reordered,
  99.9th percentile <= 1e-4, mean <= 1e-5 and max <= 1e-2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from hrdis.nonlinear import HDR, PhaseRetrieval
from hrdis.operators import AveragePoolSR, Identity, Inpainting, Operator
from hrdis.priors import load_prior
from hrdis.randomness import ReplayNoise
from hrdis.solvers import METHODS
from hrdis.solvers.ddrm import SVD

FORMAT = "hrdis-parity-fixture/1"

# The official code's draws (file:line of the call) -> the role hrdis's solvers ask for. None: drawn outside
# the solver (the measurement noise, already in the fixture's y_0).
ROLES = {
    "main.py:96": None,
    "algos/HRDIS.py:68": "x0_perturbation", "algos/HRDIS.py:69": "fresh",
    "algos/reddiff.py:63": "x0_perturbation", "algos/reddiff.py:64": "fresh",
    "algos/ddim.py:54": "initial", "algos/ddim.py:39": "step",
    "algos/ddrm.py:23": "initial", "algos/ddrm.py:131": "step", "algos/ddrm.py:139": "less_noisy",
    "algos/ddrm.py:146": "noisier",
    "algos/pgdm.py:114": "initial", "algos/pgdm.py:98": "step",
    "algos/dps.py:78": "initial", "algos/dps.py:62": "step",
}
SAMPLERS = ("ddim", "ddrm", "pigdm", "dps")


class FixtureError(ValueError):
    """A fixture this script cannot replay (one line, naming what to do)."""


# --------------------------------------------------------------------------------------------------
# The official configs as hrdis parameters


def method_and_params(cfg: dict) -> tuple[str, dict]:
    """(hrdis method, its parameters) for the official ``cfg`` (algo / exp / diffusion sections)."""
    algo, exp = cfg["algo"], cfg["exp"]
    name = algo["name"]
    if exp.get("start_step", 1000) != cfg["diffusion"]["num_diffusion_timesteps"]:
        raise FixtureError(f"start_step {exp['start_step']} is not T; only grids up to T are replayed")
    if algo.get("cond_awd") or algo.get("mcg") or algo.get("sdedit"):
        raise FixtureError(f"{name} with cond_awd, mcg or sdedit is not replayed (classifier-guided or MCG runs)")
    if not algo.get("awd", True):
        raise FixtureError(f"{name} with awd=False is not replayed")
    steps, t_end = exp["num_steps"], exp.get("end_step", 0)
    if name in ("HRDIS", "reddiff"):
        params = dict(steps=steps, t_end=t_end, lr=algo["lr"], obs_weight=algo["obs_weight"],
                      reg_weight=algo["grad_term_weight"], sigma_x0=algo["sigma_x0"],
                      reg_weighting=algo["denoise_term_weight"])
        if name == "HRDIS":
            return "hrdis", {**params, "beta": algo["beta"]}
        return "reddiff", params
    if t_end != 0:
        raise FixtureError(f"{name} with end_step {t_end}: the samplers' strided grid starts at 0")
    if name == "ddim":
        return "ddim", dict(steps=steps, eta=algo["eta"])
    if name == "ddrm":
        return "ddrm", dict(steps=steps, eta=algo["eta"], eta_b=algo["eta_b"], sigma_y=2 * algo["sigma_y"])
    if name == "pgdm":
        if algo.get("sigma_y", 0):
            raise FixtureError("PiGDM's official code ignores sigma_y; a fixture with sigma_y > 0 is not replayed")
        return "pigdm", dict(steps=steps, eta=algo["eta"], guidance=algo["grad_term_weight"])
    if name == "dps":
        if not algo.get("original", True):
            raise FixtureError("DPS with original=False is not replayed")
        return "dps", dict(steps=steps, eta=algo["eta"], step_size=algo["grad_term_weight"])
    raise FixtureError(f"no hrdis method for the official algo {name!r}")


# --------------------------------------------------------------------------------------------------
# The official operators: hrdis's own, with the official code's SVD layouts for DDRM


class OfficialInpainting(Inpainting):
    """Inpainting2 (the official ``in2_*`` operator). Its SVD for DDRM: V = U = I over one flat vector per
    image, channel-major, with the 0/1 mask as the singular values and U^T y = y unmasked."""

    def svd(self, size):
        h, w = size
        s = self.mask.float().expand(1, 3, h, w).reshape(1, 1, -1)
        flat = lambda x: x.reshape(x.shape[0], 1, -1)  # noqa: E731
        image = lambda z: z.reshape(z.shape[0], 3, h, w)  # noqa: E731
        return SVD(s, vt=flat, v=image, ut=flat, u=lambda z: image(z) * self.mask, per_channel=False)


class OfficialSuperResolution(AveragePoolSR):
    """SuperResolution (average pooling) with the official per-patch SVD (``U_small``, ``singulars_small``,
    ``V_small`` from the fixture) in the official coordinate order: the first coefficient of every patch
    (channel-major), then the other ratio^2 - 1 of each patch in turn."""

    def __init__(self, scale: int, u_small, singulars_small, v_small):
        super().__init__(scale)
        self.u_small, self.singulars_small, self.v_small = u_small.float(), singulars_small.float(), v_small.float()

    def svd(self, size):
        h, w = size
        r, c, ydim = self.scale, 3, h // self.scale
        m = c * ydim * ydim
        vt_small, v_small, u0 = self.v_small.T, self.v_small, self.u_small[0, 0]
        s = torch.zeros(1, 1, c * h * w)
        s[..., :m] = self.singulars_small.repeat(m)

        def vt(x):  # utils/degredations.py SuperResolution.Vt
            b = x.shape[0]
            patches = x.reshape(b, c, h, w).unfold(2, r, r).unfold(3, r, r).contiguous().reshape(b, c, -1, r * r)
            patches = torch.matmul(vt_small, patches.reshape(-1, r * r, 1)).reshape(b, c, -1, r * r)
            out = torch.zeros(b, c * h * w)
            out[:, :m] = patches[:, :, :, 0].reshape(b, m)
            for idx in range(r * r - 1):
                out[:, m + idx::r * r - 1] = patches[:, :, :, idx + 1].reshape(b, m)
            return out.reshape(b, 1, -1)

        def v(z):  # SuperResolution.V
            b = z.shape[0]
            z = z.reshape(b, -1)
            patches = torch.zeros(b, c, ydim * ydim, r * r)
            patches[:, :, :, 0] = z[:, :m].view(b, c, -1)
            for idx in range(r * r - 1):
                patches[:, :, :, idx + 1] = z[:, m + idx::r * r - 1].view(b, c, -1)
            patches = torch.matmul(v_small, patches.reshape(-1, r * r, 1)).reshape(b, c, -1, r * r)
            patches = patches.reshape(b, c, ydim, ydim, r, r).permute(0, 1, 2, 4, 3, 5).contiguous()
            return patches.reshape(b, c, h, w)

        def ut(y):
            return F.pad(u0 * y.reshape(y.shape[0], -1), (0, c * h * w - m)).reshape(y.shape[0], 1, -1)

        def u(z):
            return (u0 * z.reshape(z.shape[0], -1)[:, :m]).reshape(z.shape[0], c, ydim, ydim)

        return SVD(s, vt, v, ut, u, per_channel=False, measured=m)


def operator_and_measurement(fixture: dict) -> tuple[Operator, torch.Tensor]:
    """hrdis's operator for the fixture's and the measurement y_0 in hrdis's layout."""
    op, y0, batch = fixture["operator"], fixture["y_0"].float(), fixture["x"].shape[0]
    kind = op["kind"]
    if kind.startswith("Inpainting2"):
        return OfficialInpainting(op["mask"].float()), y0.reshape(batch, 3, *op["mask"].shape[-2:])
    if kind.startswith("SuperResolution"):
        size = fixture["x"].shape[-1] // op["factor"]
        return (OfficialSuperResolution(op["factor"], op["U_small"], op["singulars_small"], op["V_small"]),
                y0.reshape(batch, 3, size, size))
    if kind.startswith("PhaseRetrieval"):
        return PhaseRetrieval(op["oversample"], padding_for_size=int(round(op["pad"] * 8 / op["oversample"]))), y0
    if kind.startswith("HDR"):
        return HDR(), y0
    if kind.startswith("Denoising"):
        return Identity(), y0.reshape(fixture["x"].shape)
    raise FixtureError(f"no hrdis operator for the official {kind!r}")


# --------------------------------------------------------------------------------------------------
# Replay


def recorded_draws(fixture: dict) -> list[tuple[str, torch.Tensor]]:
    """The fixture's draws as (role, values), regenerated in order from its seed (the recipe of its README)
    and checked against the recorded checksums."""
    generator = torch.Generator().manual_seed(int(fixture["noise_seed"]))
    draws = []
    for d in fixture["noise"]:
        values = torch.randn(tuple(d["shape"]), generator=generator)
        if d["numel"] and abs(values.double().sum().item() - d["sum"]) > 1e-3 * max(1.0, abs(d["sum"])):
            raise FixtureError(f"draw {d['label']} at offset {d['offset']} does not match its checksum")
        if d["label"] not in ROLES:
            raise FixtureError(f"unknown official draw {d['label']}; add its role to ROLES")
        if ROLES[d["label"]] is not None:
            draws.append((ROLES[d["label"]], values))
    return draws


@dataclass
class Comparison:
    name: str
    method: str
    result_max: float
    result_p999: float
    result_mean: float
    traj_max: float
    traj_p999: float
    traj_mean: float
    ok: bool


def differences(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    d = (a.double() - b.double()).abs().flatten()
    return d.max().item(), torch.quantile(d, 0.999).item(), d.mean().item()


def within_tolerance(sampler: bool, max_abs: float, p999: float, mean: float) -> bool:
    if sampler:
        return max_abs <= 1e-5
    return max_abs <= 1e-4 or (p999 <= 1e-4 and mean <= 1e-5 and max_abs <= 1e-2)


def replay(path: Path, prior_cache: dict) -> Comparison:
    fixture = torch.load(path, weights_only=True)
    if fixture.get("format") != FORMAT:
        raise FixtureError(f"{path.name} is not a {FORMAT} fixture")
    method, params = method_and_params(fixture["cfg"])
    network = path.parent / "face64"
    if network not in prior_cache:
        prior_cache[network] = load_prior(network)
    prior = prior_cache[network]
    operator, y = operator_and_measurement(fixture)
    spec = METHODS[method]
    config = spec.build_config(params, "official")
    iterates = []
    result = spec.solver(y, operator, prior, config, randomness=ReplayNoise(recorded_draws(fixture)),
                         callback=lambda info: iterates.append(info["x"].clone()))
    trajectory = torch.stack([result.init] + iterates)
    reference = fixture["traj"].float()
    steps = list(fixture["traj_steps"])
    if len(iterates) != fixture["num_iterations"]:
        raise FixtureError(f"{path.name}: hrdis ran {len(iterates)} iterations, the official code "
                           f"{fixture['num_iterations']}")
    traj_diff = differences(trajectory[steps], reference)
    result_diff = differences(result.image, fixture["outputs"][fixture["result_key"]].float())
    sampler = method in SAMPLERS
    ok = within_tolerance(sampler, *result_diff) and within_tolerance(sampler, *traj_diff)
    return Comparison(fixture["name"], method, *result_diff, *traj_diff, ok)


def fixture_paths(args: list[str]) -> list[Path]:
    paths = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            paths += sorted(q for q in p.glob("*.pt") if not q.name.startswith("noise_bank"))
        elif p.is_file():
            paths.append(p)
        else:
            raise FixtureError(f"{a}: no such file or folder")
    if not paths:
        raise FixtureError("no fixtures given; pass .pt files or a fixture folder")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixtures", nargs="+", help="fixture .pt files or folders of them")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the fixtures were made on one thread; so is round-off comparable
    try:
        paths = fixture_paths(args.fixtures)
        cache, failed = {}, 0
        for path in paths:
            c = replay(path, cache)
            failed += not c.ok
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:28s} {c.method:8s} result max {c.result_max:.2e} "
                  f"p99.9 {c.result_p999:.2e} | trajectory max {c.traj_max:.2e} p99.9 {c.traj_p999:.2e}",
                  flush=True)
    except (FixtureError, OSError) as e:
        print(f"parity: {e}", file=sys.stderr)
        return 2
    print(f"{len(paths) - failed} of {len(paths)} fixtures within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
