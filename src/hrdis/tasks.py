"""Named inverse problems: how to build the operator for an image size, and the solver preset.

Presets follow the HRDIS paper's Table 5 (steps N, obs_weight lambda_1, reg_weight lambda_2, lr): overrides of
the HRDIS family's config (``solvers.hrdis.RegularisedConfig``), checked against its fields when this module
loads. Noisy measurements (App. C.2) clip omega_t at 2.0 and lower obs_weight: 0.1 for Gaussian noise of
sigma 0.05 and 0.05 for stronger Gaussian, Poisson and speckle noise (``noisy_preset``).
Sizes scale with the image: a 24x24 box at 64 px, 128x128 at 256 px (as DPS used).

Table 5 was tuned for 256 px networks. At 64 px (the bundled prior) some of its learning rates
overshoot (linear problems) and the nonlinear blur and HDR need more steps, so a task may carry overrides per
image size (``Task.tuned``, e.g. ``INPAINT_64``); the solve picks them up from the prior's image size
(``Task.preset_for``). Give ``lr=...`` to override.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from . import masks, nonlinear, operators
from .noise import GaussianNoise, NoNoise, Noise
from .solvers.hrdis import RegularisedConfig


def preset(**params) -> dict:
    """Settings of the HRDIS family's config, checked against its fields (a typo fails at import)."""
    RegularisedConfig.check_names("the HRDIS-family preset", params)
    return params


@dataclass(frozen=True)
class Tuned:
    """A task's settings for one image size: solver overrides, and its own noisy data-weight factors
    (``noisy_preset``; None: App. C.2's)."""

    params: dict = field(default_factory=dict)
    noisy_obs_factors: tuple[float, float] | None = None


INPAINT = preset(steps=150, obs_weight=1.0, reg_weight=0.25, lr=0.1)
SR = preset(steps=100, obs_weight=1.0, reg_weight=0.20, lr=0.5)
CS = preset(steps=300, obs_weight=1.0, reg_weight=0.20, lr=0.5)
DEBLUR = preset(steps=100, obs_weight=1.0, reg_weight=0.20, lr=0.5)  # not in Table 5: SR's, the closest linear problem
DENOISE = preset(steps=100, obs_weight=1.0, reg_weight=0.25, lr=0.1)
# Phase retrieval (App. B.2): the first 250 of 500 steps use pure fresh noise; best of 4 seeds by residual
# (``PHASE_RETRIEVAL_RESTARTS``, a property of the task, applied by ``hrdis.solve``).
PHASE_RETRIEVAL = preset(steps=500, obs_weight=0.5, reg_weight=0.25, lr=0.7, fresh_noise_steps=250)
PHASE_RETRIEVAL_RESTARTS = 4
HIGH_DYNAMIC_RANGE = preset(steps=100, obs_weight=1.0, reg_weight=0.25, lr=0.1)
# Table 5's obs_weight 0.02 was tuned for the paper's learned blur network; this physical blur's data term is on
# another scale and 0.02 underfits y (docs/RESULTS.md, "The nonlinear blur's data weight").
NONLINEAR_DEBLUR = preset(steps=100, obs_weight=1.0, reg_weight=0.25, lr=0.1)
# Not in Table 5 (App. C.7 gives only ~300 NFE): inpainting's weights, 300 steps.
BLIND_LOWLIGHT = preset(steps=300, obs_weight=1.0, reg_weight=0.25, lr=0.1)

# At 64 px (the bundled prior) Table 5's rates let the network's errors, fed back by the hybrid noise, pile up
# into blotches; a small rate averages them out (docs/RESULTS.md, "Learning rates at 64 px").
# Under noise App. C.2's data weights starve the data term at 64 px, so inpainting keeps a stronger one
# (docs/RESULTS.md, "Noisy data weights at 64 px"; Poisson and speckle count as heavy noise, as in C.2).
INPAINT_64 = Tuned(preset(lr=0.02), noisy_obs_factors=(2.0, 0.5))
# SR and CS under noise starve the same way; CS wants a strong data term even under noise. Swept on x4 and 25%,
# applied to every SR and CS task (docs/RESULTS.md, "Noisy SR and CS presets at 64 px").
SR_64 = Tuned(preset(lr=0.02), noisy_obs_factors=(0.5, 0.2))
CS_64 = Tuned(preset(lr=0.02), noisy_obs_factors=(8.0, 8.0))
# The linear blurs (no Table 5 entry) are tuned under DPS's noise, as a noiseless 64 px blur is invertible by A^+
# alone; more steps or a higher rate fit the noise (docs/RESULTS.md, "The linear blurs at 64 px").
DEBLUR_64 = Tuned(preset(lr=0.01), noisy_obs_factors=(2.0, 0.5))
# The nonlinear problems were short of steps, not of rate: each takes the fewest of N 100 / 300 / 1000 at which
# HRDIS matches RED-diff's 1000-step preset; HDR keeps Table 5's lr, as a higher rate's gain did not carry over
# to the evaluation faces (docs/RESULTS.md, "The nonlinear presets at 64 px").
NONLINEAR_DEBLUR_64 = Tuned(preset(steps=300, lr=0.05))
HIGH_DYNAMIC_RANGE_64 = Tuned(preset(steps=300))


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    make_operator: Callable[[int, int], operators.Operator]  # (image_size, seed) -> operator
    preset: dict = field(default_factory=dict)
    tuned: dict[int, Tuned] = field(default_factory=dict)  # image size -> overrides of preset
    restarts: int = 1  # solve keeps the best of this many seeds by measurement residual
    # (image_size, seed) -> the operator as the official code builds it, where it differs (``official_operator``)
    make_official_operator: Callable[[int, int], operators.Operator] | None = None
    # the same for the methods' own authors' code (DPS, DMPlug, DAPS: ``variant="authors"``)
    make_authors_operator: Callable[[int, int], operators.Operator] | None = None

    def preset_for(self, image_size: int | None) -> dict:
        """The preset at this image size: Table 5's, with the overrides tuned for that size."""
        return {**self.preset, **self.tuned.get(image_size, Tuned()).params}

    def noisy_obs_factors_for(self, image_size: int | None) -> tuple[float, float]:
        return self.tuned.get(image_size, Tuned()).noisy_obs_factors or NOISY_OBS_FACTORS

    def operator(self, image_size: int, seed: int = 0, variant: str = "default") -> operators.Operator:
        """The task's operator for this image size; ``variant="official"`` builds it as the official code does,
        ``variant="authors"`` as the DPS / DMPlug / DAPS authors' code does."""
        if variant == "official" and self.make_official_operator is not None:
            return self.make_official_operator(image_size, seed)
        if variant == "authors" and self.make_authors_operator is not None:
            return self.make_authors_operator(image_size, seed)
        return self.make_operator(image_size, seed)


def box_size(image_size: int) -> int:
    return {64: 24, 256: 128}.get(image_size, max(1, image_size * 3 // 8))


def blur_kernel_size(image_size: int) -> int:
    """61 px at 256 (DPS); odd and proportionally smaller below."""
    return max(3, int(round(61 * image_size / 256)) | 1)


def _tasks() -> dict[str, Task]:
    t = [
        Task("inpaint-box", "inpainting of a centred square hole (24 px at 64 px, 128 px at 256 px)",
             lambda n, s: operators.Inpainting(masks.box_mask(n, box_size(n))), INPAINT, {64: INPAINT_64}),
        Task("inpaint-random", "inpainting with 70% of the pixels missing at random",
             lambda n, s: operators.Inpainting(masks.random_pixel_mask(n, 0.7, seed=s)), INPAINT, {64: INPAINT_64}),
        Task("inpaint-ff10", "inpainting of free-form brush strokes covering 10-20% of the image",
             lambda n, s: operators.Inpainting(masks.freeform_mask(n, (0.1, 0.2), seed=s)), INPAINT, {64: INPAINT_64}),
        Task("inpaint-ff20", "inpainting of free-form brush strokes covering 20-30% of the image",
             lambda n, s: operators.Inpainting(masks.freeform_mask(n, (0.2, 0.3), seed=s)), INPAINT, {64: INPAINT_64}),
        Task("inpaint-ff30", "inpainting of free-form brush strokes covering 30-40% of the image",
             lambda n, s: operators.Inpainting(masks.freeform_mask(n, (0.3, 0.4), seed=s)), INPAINT, {64: INPAINT_64}),
        Task("sr2", "x2 super-resolution, average pooling", lambda n, s: operators.AveragePoolSR(2), SR, {64: SR_64}),
        Task("sr4", "x4 super-resolution, average pooling", lambda n, s: operators.AveragePoolSR(4), SR, {64: SR_64}),
        Task("sr8", "x8 super-resolution, average pooling", lambda n, s: operators.AveragePoolSR(8), SR, {64: SR_64}),
        Task("sr16", "x16 super-resolution, average pooling", lambda n, s: operators.AveragePoolSR(16), SR, {64: SR_64}),
        Task("sr4-bicubic", "x4 super-resolution, bicubic downsampling",
             lambda n, s: operators.BicubicSR(4, n), SR, {64: SR_64},
             # the authors' Resizer (DPS, DMPlug, DAPS): mirrored borders
             make_authors_operator=lambda n, s: operators.BicubicSR(4, n, border="mirror")),
        Task("cs10", "block compressed sensing, 10% of measurements (orthogonal 32x32-block matrix)",
             lambda n, s: operators.BlockCS(0.10, seed=s), CS, {64: CS_64}),
        Task("cs25", "block compressed sensing, 25% of measurements (orthogonal 32x32-block matrix)",
             lambda n, s: operators.BlockCS(0.25, seed=s), CS, {64: CS_64}),
        Task("deblur-gauss", "Gaussian deblurring (61 px kernel, sigma 3.0 at 256 px, scaled with the image)",
             lambda n, s: operators.Blur(operators.gaussian_kernel(blur_kernel_size(n), 3.0 * n / 256)), DEBLUR,
             {64: DEBLUR_64}),
        Task("deblur-motion", "motion deblurring (61 px kernel, intensity 0.5 at 256 px, scaled with the image)",
             lambda n, s: operators.Blur(operators.motion_kernel(blur_kernel_size(n), 0.5, seed=s)), DEBLUR,
             {64: DEBLUR_64}),
        Task("denoise", "denoising (identity operator; give --noise)", lambda n, s: operators.Identity(), DENOISE),
        Task("phase-retrieval", "Fourier phase retrieval, oversampling 2.0 (best of 4 seeds by measurement residual)",
             lambda n, s: nonlinear.PhaseRetrieval(2.0), PHASE_RETRIEVAL, restarts=PHASE_RETRIEVAL_RESTARTS,
             # the official code pads 64 px (2.0 / 8 of 256) whatever the image size
             make_official_operator=lambda n, s: nonlinear.PhaseRetrieval(2.0, padding_for_size=256),
             make_authors_operator=lambda n, s: nonlinear.PhaseRetrieval(2.0, padding_for_size=256)),  # DPS's too
        Task("hdr", "high dynamic range: y = clip(2x, -1, 1)", lambda n, s: nonlinear.HDR(), HIGH_DYNAMIC_RANGE,
             {64: HIGH_DYNAMIC_RANGE_64}),
        Task("deblur-nonlinear", "nonlinear deblurring: a fixed motion blur (as deblur-motion) in linear light "
             "behind a gamma-2.2 camera response with soft highlight saturation",
             lambda n, s: nonlinear.NonlinearBlur(operators.motion_kernel(blur_kernel_size(n), 0.5, seed=s)),
             NONLINEAR_DEBLUR, {64: NONLINEAR_DEBLUR_64}),
        Task("blind-lowlight", "low light: y = f x + M with gain f in [0.25, 0.35] and a smooth veil M, both unknown "
             "to method hrdis-blind (method hrdis is given them: an oracle)",
             lambda n, s: nonlinear.BlindGainOffset.random_lowlight(n, s), BLIND_LOWLIGHT),
    ]
    return {task.name: task for task in t}


TASKS: dict[str, Task] = _tasks()


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def task_like(name: str, like: str, description: str, make_operator=None) -> Task:
    """The task called ``name``, or one with the presets (Table 5 and the per-size overrides) of the task
    ``like``: a user's mask or SR factor gets the same tuned preset as the equivalent named task."""
    if name in TASKS:
        return TASKS[name]
    changes = {"name": name, "description": description}
    if make_operator is not None:
        changes["make_operator"] = make_operator
    return dataclasses.replace(get_task(like), **changes)


def observation_problem(image_size: int, *, task: str | None = None, mask=None, scale: int | None = None,
                        seed: int = 0) -> tuple[Task, operators.Operator]:
    """The task and operator under which a real degraded picture is restored: a user's ``mask`` (inpainting,
    with the inpainting presets), an SR ``scale`` (the srN task), or a ``task`` whose measurement is a
    picture (``Operator.observable``). A one-line error for anything else."""
    if mask is not None:
        chosen = get_task(task) if task else task_like("inpaint", "inpaint-box", "inpainting of a given mask")
        return chosen, operators.Inpainting(mask)
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"--scale must be a positive integer, got {scale!r}")
        if image_size % scale:
            raise ValueError(f"--scale {scale} does not divide the prior's {image_size} px; use a factor of {image_size}")
        chosen = get_task(task) if task else task_like(f"sr{scale}", "sr4", f"x{scale} super-resolution",
                                                       lambda n, s: operators.AveragePoolSR(scale))
    elif task:
        chosen = get_task(task)
    else:
        raise ValueError("--observed needs --mask (inpainting), --scale (super-resolution) or --task; see `hrdis info`")
    operator = chosen.operator(image_size, seed)
    if scale is not None and getattr(operator, "scale", scale) != scale:
        raise ValueError(f"--scale {scale} contradicts --task {task}; give one of them")
    if not operator.observable:
        observable = ", ".join(n for n, t in TASKS.items() if t.operator(image_size, seed).observable)
        raise ValueError(f"--observed cannot restore {chosen.name}: its measurement is not a picture; tasks whose "
                         f"measurement is one: {observable} (inpainting with --mask)")
    return chosen, operator


# App. C.2's lambda_1 under noise, as factors on the noiseless one: (Gaussian sigma <= 0.05, any other noise).
NOISY_OBS_FACTORS = (0.1, 0.05)


def noisy_preset(preset: dict, noise: Noise, factors: tuple[float, float] = NOISY_OBS_FACTORS) -> dict:
    """App. C.2: with noisy measurements, clip omega_t at 2.0 and lower the data weight.

    The paper states the weights for inpainting (lambda_1 = 1 -> 0.1 for Gaussian sigma <= 0.05, 0.05
    otherwise); they are applied here as factors (light noise, heavy noise), so a task whose noiseless
    lambda_1 is already small (nonlinear deblurring, 0.02) is lowered in proportion instead of raised. A task
    may carry its own factors for an image size (``Tuned.noisy_obs_factors``, e.g. inpainting at 64 px).
    """
    if isinstance(noise, NoNoise):
        return dict(preset)
    light = isinstance(noise, GaussianNoise) and noise.sigma <= 0.05
    factor = factors[0] if light else factors[1]
    return {**preset, "min_weight": 2.0, "obs_weight": preset.get("obs_weight", 1.0) * factor}
