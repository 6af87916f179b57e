"""Does a measurement look like the prior's training data?

A face prior given a cat restores human eyes and skin-coloured blobs. Before solving, the CLI scores the
measurement's starting estimate (``operator.initial_estimate(y)``: A^+(y), or y itself for blur) by the
prior's denoising error (``priors.denoising_error``, the score ``api.choose_twin`` uses to tell a face
from its negative; for inpainting over the observed pixels only) relative to the image's complexity:

    score = log(denoising error at t = 0.02, 0.05, 0.1 T, 2 noise draws each) - log(PNG bytes per pixel)

The correction is Serra et al.'s (ICLR 2020, "Input complexity and out-of-distribution detection"): a
flat grey square or a smooth gradient is easy to denoise under any prior, and without it such images
scored as more face-like than faces. The small t are where faces and non-faces differed most: at
choose_twin's 0.1-0.6 T the cat of scikit-image scored like a face. 6 network evaluations.

The score depends on the prior, so the threshold is the prior's: ``plausibility.json`` in the prior
folder (written by ``scripts/calibrate_plausibility.py`` from held-out faces); a prior without one is not
checked. The starting estimate also depends on the operator (holes, blocky upsampling), so the file holds
one threshold per kind of operator, and an operator it does not name (compressed sensing, phase
retrieval: their A^+(y) is not an image) is not checked.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import images
from .operators import Operator
from .priors import Prior, denoising_error

FRACTIONS, DRAWS = (0.02, 0.05, 0.1), 2
CALIBRATION_FILE = "plausibility.json"


def operator_kind(operator: Operator) -> str | None:
    """The calibration key of an operator: "image" (y is the image: denoising, blur), "inpaint", "sr4" ...
    (by SR factor), or None for an operator whose starting estimate the check does not score."""
    if not (operator.linear and operator.observable):
        return None
    if operator.selects_pixels:
        return "inpaint"
    return f"sr{operator.scale}" if operator.scale > 1 else "image"


def score(prior: Prior, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per image of x (B, 3, H, W) in [-1, 1]: log denoising error (over the pixels ``weight`` weights,
    default all) minus log PNG bytes per weighted pixel. Higher = less like the prior's images."""
    error = denoising_error(prior, x, fractions=FRACTIONS, draws=DRAWS, weight=weight)
    shares = (torch.ones(x.shape[0]) if weight is None
              else weight.expand(x.shape[0], 1, *x.shape[-2:]).flatten(1).mean(1).cpu())
    bytes_per_pixel = torch.tensor([png_bytes(xi) for xi in x], dtype=torch.float64) / (x.shape[-1] * x.shape[-2])
    return error.log() - (bytes_per_pixel / shares.double().clamp_min(1e-3)).log()


def png_bytes(x: torch.Tensor) -> int:
    """The size of x (3, H, W) as an 8-bit PNG: a measure of its complexity."""
    buf = io.BytesIO()
    images.tensor_to_pil(x).save(buf, format="PNG")
    return len(buf.getvalue())


def start_and_weight(y: torch.Tensor, operator: Operator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the check scores: the starting estimate, and for inpainting its observed pixels only (a hole,
    left at 0, says nothing about the image and would count against any face with a large one)."""
    with torch.no_grad():
        start = operator.initial_estimate(y).clamp(-1, 1)
    if not operator.selects_pixels:
        return start, None
    with torch.no_grad():  # A^+ A is the 0/1 mask of observed pixels
        observed = operator.pinv(operator(torch.ones_like(start[:1])))[:, :1]
    return start, observed


@dataclass
class Verdict:
    score: float
    threshold: float
    kind: str

    @property
    def unlike(self) -> bool:
        return self.score > self.threshold

    def message(self) -> str:
        return (f"the image looks unlike the prior's training data (plausibility score {self.score:.2f}, above "
                f"this prior's limit {self.threshold:.2f}), so the result will be unreliable; --no-check skips "
                f"this check")


def thresholds(prior: Prior) -> dict[str, float]:
    """The prior folder's thresholds by operator kind ({} when it has none)."""
    source = Path(getattr(prior, "source", "") or "")
    path = source / CALIBRATION_FILE
    if not source.is_dir() or not path.is_file():
        return {}
    return {k: float(v) for k, v in json.loads(path.read_text())["thresholds"].items()}


def check(prior: Prior, y: torch.Tensor, operator: Operator) -> Verdict | None:
    """Score the starting estimate of the first measurement of ``y`` against the prior's threshold for this
    kind of operator; None when there is nothing to check against."""
    kind = operator_kind(operator)
    limit = thresholds(prior).get(kind) if kind else None
    if limit is None:
        return None
    start, weight = start_and_weight(y[:1], operator)
    return Verdict(float(score(prior, start, weight)[0]), limit, kind)
