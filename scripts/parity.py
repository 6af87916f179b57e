"""Replay reference runs of the methods' code through hrdis and report how far the results are apart.

    python scripts/parity.py FIXTURE.pt [FIXTURE.pt ...]
    python scripts/parity.py ../shared/fixtures/parity ../shared/fixtures/parity-dps   # every fixture of folders

A fixture (format ``hrdis-parity-fixture/1``, see its folder's README) holds one run of a reference code on a
fixed network: its config, the measurement, the operator, every random draw with its role, the trajectory
and the result. Which code ran is the fixture's ``official_repo`` (absent: the HRDIS paper's code), and it
decides the variant replayed (``CODEBASES``):

- deng-ai-lab/HRDIS (the HRDIS paper's code, a fork of NVlabs/RED-diff): the methods' official variant;
- DPS2022/diffusion-posterior-sampling: ``dps``, authors' variant;
- sun-umn/DMPlug: ``dmplug``, authors' variant (the best-PSNR iterate against the fixture's clean image);
- zhangbingliang2019/DAPS: ``daps``, authors' variant.

For each fixture this script rebuilds the operator, the parameters and the network (the fixture's
``weights_dir``, else the ``face64`` prior folder beside it), replays the recorded draws
(``hrdis.randomness.ReplayNoise``; each code's draw labels map to hrdis's roles), and prints one line: the
max abs and 99.9th-percentile difference of the result and of the trajectory against the reference. It
exits 1 when any fixture is outside its README's tolerance:

- samplers (DDIM, DDRM, PiGDM, DPS) and DMPlug: max abs <= 1e-5 on the result and at every trajectory step;
- DAPS: max abs <= 1e-5 on the result, <= 1e-4 at every trajectory step (its README's bound for reordered
  arithmetic: the trajectory starts at 100 x N(0, I), where one float32 ulp is up to 3e-5);
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
from hrdis.operators import AveragePoolSR, BicubicSR, Identity, Inpainting, Operator, resizer_matrix
from hrdis.priors import load_prior
from hrdis.randomness import ReplayNoise
from hrdis.solvers import METHODS
from hrdis.solvers.ddrm import SVD

FORMAT = "hrdis-parity-fixture/1"

# Each code's draws (file:line of the call) -> the role hrdis's solvers ask for. None: drawn outside the
# solver (the measurement noise, already in the fixture's y_0), or never read by the method's arithmetic.
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
SAMPLERS = ("ddim", "ddrm", "pigdm", "dps")  # the HRDIS code's samplers: the samplers' tolerance
DPS_ROLES = {
    "guided_diffusion/measurements.py:243": None,
    "sample_condition.py:113": "initial",
    "guided_diffusion/gaussian_diffusion.py:369": "step",  # the DDPM noise (also drawn, unused, at t = 0)
    "guided_diffusion/gaussian_diffusion.py:140": "unused",  # q_sample of y, never read by "ps"
}
DMPLUG_ROLES = {"guided_diffusion/measurements.py:284": None, "sr_inp_nonlinear.py:52": "initial"}
DAPS_ROLES = {
    "data.py:46": None,  # the dataset's noise, weight zero
    "forward_operator/__init__.py:75": None,
    "sampler.py:134": "initial",
    "cores/mcmc.py:153": "langevin",
    "sampler.py:77": "step",
}


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
    """hrdis's operator for an HRDIS-code fixture's, and the measurement y_0 in hrdis's layout."""
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
# The authors' codes: DPS, DMPlug, DAPS


def resizer(op: dict, size: int) -> BicubicSR:
    """The authors' bicubic ``Resizer`` (``util/resizer.py``): hrdis's ``BicubicSR`` with mirrored borders,
    checked against the fixture's own matrices."""
    factor = size // op["matrix_rows"].shape[0]
    operator = BicubicSR(factor, size, border="mirror")
    if (resizer_matrix(size, factor) - op["matrix_rows"].double()).abs().max() > 1e-12:
        raise FixtureError("the fixture's Resizer matrix is not hrdis's mirrored bicubic; this Resizer is not replayed")
    return operator


def authors_operator(fixture: dict) -> Operator:
    """The operator of a DPS / DMPlug / DAPS fixture (``InpaintingOperator``, the ``Resizer`` SR, phase retrieval)."""
    op, size = fixture["operator"], fixture["x"].shape[-1]
    kind = op["kind"]
    if "mask" in op:
        return Inpainting(op["mask"].float())
    if "matrix_rows" in op:
        return resizer(op, size)
    if kind.startswith("PhaseRetrieval"):
        pad = op.get("pad", 64)
        unit_range = "x * 0.5 + 0.5" in op.get("forward", "")  # DAPS measures x mapped to [0, 1]
        return PhaseRetrieval(op["oversample"], padding_for_size=int(round(pad * 8 / op["oversample"])),
                              unit_range=unit_range)
    raise FixtureError(f"no hrdis operator for the authors' {kind!r}")


@dataclass
class Replay:
    """What one fixture replays: the hrdis method, its parameters and variant, the operator and y, the map
    from the code's draw labels to hrdis's roles, the tolerance rule ("sampler", "adam" or "reordered", the
    DAPS README's), which recorded trajectory the iterates are compared with (``traj``: x after each
    iteration, with the start first; ``outputs_traj``: the image of each iteration), and the clean image a
    method's oracle needs (DMPlug's best-PSNR iterate)."""

    method: str
    params: dict
    variant: str
    operator: Operator
    y: torch.Tensor
    roles: dict
    tolerance: str
    trajectory_key: str = "traj"
    reference: torch.Tensor | None = None


def hrdis_codebase(fixture: dict) -> Replay:
    """The HRDIS paper's code (and its RED-diff, DDIM, DDRM, PiGDM, DPS): the official variants."""
    method, params = method_and_params(fixture["cfg"])
    operator, y = operator_and_measurement(fixture)
    return Replay(method, params, "official", operator, y, ROLES, "sampler" if method in SAMPLERS else "adam")


def dps_codebase(fixture: dict) -> Replay:
    """The DPS authors' code: ``sampler: ddpm``, the respaced grid (hrdis's even grid), conditioning "ps"."""
    diffusion, conditioning = fixture["cfg"]["diffusion"], fixture["cfg"]["task"]["conditioning"]
    if diffusion["sampler"] != "ddpm" or conditioning["method"] != "ps":
        raise FixtureError(f"DPS's {diffusion['sampler']} sampler with {conditioning['method']!r} conditioning is "
                           "not replayed (only ddpm + ps)")
    if not diffusion.get("clip_denoised", True) or diffusion.get("dynamic_threshold"):
        raise FixtureError("DPS without clip_denoised, or with dynamic thresholding, is not replayed")
    steps = int(diffusion["timestep_respacing"] or diffusion["steps"])
    params = dict(steps=steps, step_size=float(fixture["scale"]))
    return Replay("dps", params, "authors", authors_operator(fixture), fixture["y_0"].float(), DPS_ROLES, "sampler")


def dmplug_codebase(fixture: dict) -> Replay:
    """DMPlug's ``dmplug()``: Adam on the seed of a DDIM(eta 0) reverse process, the best-PSNR iterate."""
    args = fixture["cfg"]["args"]
    if args.get("eta", 0.0) != 0.0:
        raise FixtureError(f"DMPlug with eta {args['eta']} is not replayed (only eta 0)")
    params = dict(steps=len(fixture["loss"]), ddim_steps=int(args["custom_steps"]), lr=float(args["lr"]))
    return Replay("dmplug", params, "authors", authors_operator(fixture), fixture["y_0"].float(), DMPLUG_ROLES,
                  "sampler", trajectory_key="outputs_traj", reference=fixture["x"].float())


def daps_codebase(fixture: dict) -> Replay:
    """DAPS's ``DAPS.sample`` (pixel space, Langevin, prior_solver gaussian)."""
    sampler, mcmc = fixture["cfg"]["sampler"], fixture["cfg"]["task"]["mcmc_sampler_config"]
    annealing, ode = sampler["annealing_scheduler_config"], sampler["diffusion_scheduler_config"]
    if sampler.get("latent") or mcmc["mc_algo"] != "langevin" or mcmc["prior_solver"] != "gaussian":
        raise FixtureError("only pixel-space DAPS with Langevin and prior_solver gaussian is replayed")
    if annealing["timestep"] != "poly-7" or ode["timestep"] != "poly-7":
        raise FixtureError("only DAPS's poly-7 EDM schedules are replayed")
    params = dict(steps=annealing["num_steps"], ode_steps=ode["num_steps"], sigma_max=float(annealing["sigma_max"]),
                  sigma_min=float(annealing["sigma_min"]), sigma_ode_min=float(ode["sigma_min"]),
                  langevin_steps=mcmc["num_steps"], lr=float(mcmc["lr"]), lr_min_ratio=float(mcmc["lr_min_ratio"]),
                  tau=float(mcmc["tau"]))
    # The trajectory starts at 100 x N(0, I), where one float32 ulp is up to 3e-5: hrdis's matrix-product
    # Resizer and FFT round differently there, which the README's 1e-4 for reordered arithmetic allows.
    return Replay("daps", params, "authors", authors_operator(fixture), fixture["y_0"].float(), DAPS_ROLES,
                  "reordered")


# official_repo -> how to replay it (fixtures without the key come from the HRDIS paper's code)
CODEBASES = {
    "deng-ai-lab/HRDIS": hrdis_codebase,
    "DPS2022/diffusion-posterior-sampling": dps_codebase,
    "sun-umn/DMPlug": dmplug_codebase,
    "zhangbingliang2019/DAPS": daps_codebase,
}


# --------------------------------------------------------------------------------------------------
# Replay


def recorded_draws(fixture: dict, roles: dict = ROLES) -> list[tuple[str, torch.Tensor]]:
    """The fixture's draws as (role, values), regenerated in order from its seed (the recipe of its README)
    and checked against the recorded checksums."""
    generator = torch.Generator().manual_seed(int(fixture["noise_seed"]))
    draws = []
    for d in fixture["noise"]:
        values = torch.randn(tuple(d["shape"]), generator=generator)
        if d["numel"] and abs(values.double().sum().item() - d["sum"]) > 1e-3 * max(1.0, abs(d["sum"])):
            raise FixtureError(f"draw {d['label']} at offset {d['offset']} does not match its checksum")
        if d["label"] not in roles:
            raise FixtureError(f"unknown draw {d['label']}; add its role to the codebase's roles in scripts/parity.py")
        if roles[d["label"]] is not None:
            draws.append((roles[d["label"]], values))
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
    variant: str = "official"


def differences(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    d = (a.double() - b.double()).abs().flatten()
    return d.max().item(), torch.quantile(d, 0.999).item(), d.mean().item()


def within_tolerance(sampler: bool, max_abs: float, p999: float, mean: float) -> bool:
    if sampler:
        return max_abs <= 1e-5
    return max_abs <= 1e-4 or (p999 <= 1e-4 and mean <= 1e-5 and max_abs <= 1e-2)


def codebase_of(fixture: dict) -> str:
    repo = fixture.get("official_repo", "deng-ai-lab/HRDIS")
    if repo not in CODEBASES:
        raise FixtureError(f"{fixture.get('name')}: no replay for code from {repo!r}; known: {', '.join(CODEBASES)}")
    return repo


def network_folder(path: Path, fixture: dict) -> Path:
    folder = path.parent / fixture.get("weights_dir", "face64")
    if not folder.is_dir():
        raise FixtureError(f"{path.name}: its network {folder} is missing; put the face64 prior folder there")
    return folder.resolve()


def replay(path: Path, prior_cache: dict) -> Comparison:
    fixture = torch.load(path, weights_only=True)
    if fixture.get("format") != FORMAT:
        raise FixtureError(f"{path.name} is not a {FORMAT} fixture")
    r = CODEBASES[codebase_of(fixture)](fixture)
    network = network_folder(path, fixture)
    if network not in prior_cache:
        prior_cache[network] = load_prior(network)
    spec = METHODS[r.method]
    config = spec.build_config(r.params, r.variant)
    iterates = []
    result = spec.solver(r.y, r.operator, prior_cache[network], config,
                         randomness=ReplayNoise(recorded_draws(fixture, r.roles)), reference=r.reference,
                         callback=lambda info: iterates.append(info["x"].clone()))
    reference = fixture[r.trajectory_key].float()
    if r.trajectory_key == "traj":
        iterations = fixture.get("num_iterations", reference.shape[0] - 1)
        trajectory = torch.stack([result.init] + iterates)[list(fixture["traj_steps"])]
    else:
        iterations = reference.shape[0]
        trajectory = torch.stack(iterates)
    if len(iterates) != iterations:
        raise FixtureError(f"{path.name}: hrdis ran {len(iterates)} iterations, the reference code {iterations}")
    traj_diff = differences(trajectory, reference)
    result_diff = differences(result.image, fixture["outputs"][fixture["result_key"]].float())
    if r.tolerance == "reordered":  # the README's bound for reordered float32 arithmetic on the trajectory
        ok = within_tolerance(True, *result_diff) and traj_diff[0] <= 1e-4
    else:
        sampler = r.tolerance == "sampler"
        ok = within_tolerance(sampler, *result_diff) and within_tolerance(sampler, *traj_diff)
    return Comparison(fixture["name"], r.method, *result_diff, *traj_diff, ok, r.variant)


def fixtures_in(folder: Path) -> list[Path]:
    """The fixtures of a folder (every .pt but its noise bank)."""
    return sorted(q for q in folder.glob("*.pt") if not q.name.startswith("noise_bank"))


def fixture_paths(args: list[str]) -> list[Path]:
    paths = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            paths += fixtures_in(p)
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
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:30s} {c.method:7s} {c.variant:8s} result max {c.result_max:.2e} "
                  f"p99.9 {c.result_p999:.2e} | trajectory max {c.traj_max:.2e} p99.9 {c.traj_p999:.2e}",
                  flush=True)
    except (FixtureError, OSError) as e:
        print(f"parity: {e}", file=sys.stderr)
        return 2
    print(f"{len(paths) - failed} of {len(paths)} fixtures within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
