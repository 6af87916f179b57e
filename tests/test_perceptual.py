"""hrdis.experiments.perceptual (LPIPS, FID) and the bench's --lpips-weights / --fid-weights.

No real weights exist here: the networks get random weights, saved in the public files' layouts (torchvision
``features.N.*``, lpips ``linI.model.1.weight``, pytorch-fid's Inception3 keys) as the tests write them from
the public code, not from hrdis. Parity with the real weights is not tested.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrdis.experiments import bench, perceptual
from hrdis.cli import main
from hrdis.priors import GaussianPrior


# lpips' ScalingLayer constants (lpips/lpips.py).
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
# torchvision AlexNet.features: index -> (out, in, kernel, stride, padding, max-pool before it).
ALEX_CONVS = {0: (64, 3, 11, 4, 2, False), 3: (192, 64, 5, 1, 2, True), 6: (384, 192, 3, 1, 1, True),
              8: (256, 384, 3, 1, 1, False), 10: (256, 256, 3, 1, 1, False)}
# torchvision VGG16.features (configuration D): conv indices, all 3x3.
VGG_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
             17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg16": (64, 128, 256, 512, 512)}


def save_backbone(path, convs, seed=0):
    """A torchvision-format backbone state dict with random (He-scaled) weights."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (c_out, c_in, k, *_) in convs.items():
        state[f"features.{i}.weight"] = torch.randn(c_out, c_in, k, k, generator=g) * (2 / (c_in * k * k)) ** 0.5
        state[f"features.{i}.bias"] = 0.1 * torch.randn(c_out, generator=g)
    # The real files also hold the ImageNet classifier, which LPIPS ignores (small stand-ins here).
    state["classifier.1.weight"], state["classifier.1.bias"] = torch.zeros(4, 4), torch.zeros(4)
    torch.save(state, path)
    return state


def save_lins(path, channels, seed=1):
    g = torch.Generator().manual_seed(seed)
    # lpips' trained linear weights are non-negative (clamped during training).
    state = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(channels)}
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def alex_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lpips")
    backbone = save_backbone(d / "alexnet-owt-7be5be79.pth", ALEX_CONVS)
    lins = save_lins(d / "alex.pth", LIN_CHANNELS["alex"])
    return d / "alexnet-owt-7be5be79.pth", d / "alex.pth", backbone, lins


def reference_lpips(backbone, lins, x, y):
    """LPIPS v0.1 spelled out on the raw state dicts, from the lpips package's code: scaling layer, AlexNet
    relu1..relu5, unit-normalise over channels, squared difference, 1x1 weights, spatial mean, sum."""
    def relu_outputs(z):
        h = (z - SHIFT) / SCALE
        outs = []
        for i, (_, _, _, stride, padding, pool_before) in ALEX_CONVS.items():
            if pool_before:
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"], stride, padding))
            outs.append(h)
        return outs

    def unit(t):
        return t / (t.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    return sum(((unit(a) - unit(b)) ** 2 * lins[f"lin{k}.model.1.weight"]).sum(1).mean((1, 2))
               for k, (a, b) in enumerate(zip(relu_outputs(x), relu_outputs(y))))


def random_images(n, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# ---------------------------------------------------------------------------------------------- LPIPS

def test_lpips_loads_the_files_and_matches_the_reference(alex_files):
    backbone_path, lin_path, backbone, lins = alex_files
    model = perceptual.LPIPS.from_files(backbone_path, lin_path)
    assert model.net == "alex"
    for i in ALEX_CONVS:
        assert torch.equal(model.features[i].weight, backbone[f"features.{i}.weight"])
        assert torch.equal(model.features[i].bias, backbone[f"features.{i}.bias"])
    for k in range(5):
        assert torch.equal(model.lins[k].weight, lins[f"lin{k}.model.1.weight"])
    x, y = random_images(3, seed=0), random_images(3, seed=1)
    assert model(x, y) == pytest.approx(reference_lpips(backbone, lins, x, y), rel=1e-5)


def test_lpips_zero_for_identical_positive_and_symmetric(alex_files):
    model = perceptual.LPIPS.from_files(*alex_files[:2])
    x, y = random_images(3, seed=0), random_images(3, seed=1)
    same = model.distance(x, x)
    assert same == [0.0, 0.0, 0.0]
    d = model.distance(x, y)
    assert len(d) == 3 and all(isinstance(v, float) and v > 0 for v in d)
    assert model.distance(y, x) == pytest.approx(d, rel=1e-6)
    # a mild change scores lower than an unrelated image
    assert all(a < b for a, b in zip(model.distance(x, 0.9 * x), d))


def test_lpips_vgg16_is_recognised_and_mismatched_lins_are_named(tmp_path, alex_files):
    convs = {i: (o, c, 3) for i, (o, c) in VGG_CONVS.items()}
    save_backbone(tmp_path / "vgg16.pth", convs)
    save_lins(tmp_path / "vgg.pth", LIN_CHANNELS["vgg16"])
    model = perceptual.LPIPS.from_files(tmp_path / "vgg16.pth", tmp_path / "vgg.pth")
    assert model.net == "vgg16"
    x = random_images(2, size=32)
    assert model.distance(x, x) == [0.0, 0.0] and all(v > 0 for v in model.distance(x, x.flip(-1)))
    with pytest.raises(ValueError, match=r"wrong shapes: lin1\.model\.1\.weight \[1, 128, 1, 1\] instead of "
                                         r"\[1, 192, 1, 1\]"):
        perceptual.LPIPS.from_files(alex_files[0], tmp_path / "vgg.pth")


def test_loader_errors_are_one_line_and_say_what_to_do(tmp_path, alex_files):
    backbone_path, lin_path, backbone, _ = alex_files
    with pytest.raises(FileNotFoundError, match="not found at .*download the file yourself"):
        perceptual.LPIPS.from_files(tmp_path / "nope.pth", lin_path)
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="is not a PyTorch weights file"):
        perceptual.InceptionFeatures.from_file(tmp_path / "notes.txt")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"does not hold a state dict"):
        perceptual.LPIPS.from_files(tmp_path / "list.pth", lin_path)
    with pytest.raises(ValueError, match="not a torchvision AlexNet or VGG16"):
        perceptual.LPIPS.from_files(lin_path, backbone_path)  # the two paths swapped
    broken = {k: v for k, v in backbone.items() if k != "features.3.bias"}
    broken["features.12.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError) as info:
        perceptual.LPIPS.from_files(tmp_path / "broken.pth", lin_path)
    message = str(info.value)
    assert "missing keys: features.3.bias" in message and "unexpected keys: features.12.weight" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------- Fréchet distance

def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 2, size=6), rng.uniform(0.1, 2, size=6)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert perceptual.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-9)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T
    assert abs(perceptual.frechet_distance(mu1, sigma, mu1, sigma)) < 1e-8
    with pytest.raises(ValueError, match="imaginary component"):
        perceptual.frechet_distance(mu1, -np.eye(6), mu1, np.eye(6))  # not a covariance


@pytest.mark.parametrize("n", [5, 40])  # fewer vectors than dimensions (projected), and more (direct)
def test_fid_from_features_equals_the_frechet_distance_of_the_statistics(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 24))
    b = 0.5 + 1.5 * rng.normal(size=(n + 3, 24))
    full = perceptual.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert perceptual.fid_from_features(a, b) == pytest.approx(full, rel=1e-6)
    assert abs(perceptual.fid_from_features(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


# ---------------------------------------------------------------------------------------------- Inception

# Checked against the public code (read with the search tools): torchvision/models/inception.py (Inception3:
# stem convolutions, InceptionA-E branch names, BasicConv2d = conv without bias + bn) and pytorch-fid's
# src/pytorch_fid/inception.py (fid_inception_v3: Inception3(num_classes=1008, aux_logits=False), Mixed_5b..7c
# replaced by FIDInceptionA/C/E_1/E_2, which subclass torchvision's blocks without adding layers, then
# load_state_dict of the weights file, strict). So the file's keys are these.
BRANCHES = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
          "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
          "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
BLOCKS = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C", "Mixed_6c": "C",
          "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}
STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]


def test_inception_state_dict_keys_are_pytorch_fids():
    model = perceptual.InceptionFeatures()
    convs = STEM + [f"{block}.{branch}" for block, kind in BLOCKS.items() for branch in BRANCHES[kind]]
    expected = {f"{c}.{p}" for c in convs for p in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                    "bn.running_var", "bn.num_batches_tracked")}
    state = model.state_dict()
    assert set(state) == expected | {"fc.weight", "fc.bias"}
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Mixed_6e.branch7x7_2.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    # torchvision publishes 27,161,264 parameters for inception_v3 (with AuxLogits, 1000 classes); take away
    # the AuxLogits head (1x1 conv 768->128 + BN, 5x5 conv 128->768 + BN, fc 768->1000) and add 8 classes.
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    assert sum(p.numel() for p in model.parameters()) == 27_161_264 - aux + 8 * 2048 + 8


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random He-scaled Inception weights saved without num_batches_tracked (as files from older PyTorch)."""
    torch.manual_seed(0)
    model = perceptual.InceptionFeatures()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.bias, std=0.1)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def inception(inception_file):
    return perceptual.InceptionFeatures.from_file(inception_file[0])


def test_inception_loads_strictly_and_gives_2048_features(tmp_path, inception_file, inception):
    _, state = inception_file
    loaded = inception.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    features = inception(random_images(2, size=64))
    assert features.shape == (2, 2048) and features.std() > 0
    partial = dict(list(state.items())[5:])
    partial["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing keys: Conv2d_1a_3x3\.conv\.weight, .* \(\+2 more\); "
                                         r"unexpected keys: AuxLogits\.fc\.weight"):
        perceptual.InceptionFeatures.from_file(tmp_path / "partial.pth")


def test_fid_of_a_set_against_itself_is_zero(inception):
    x, y = random_images(4, size=32, seed=0), random_images(4, size=32, seed=1)
    whole = perceptual.inception_features(inception, x, batch_size=4)
    assert np.allclose(perceptual.inception_features(inception, x, batch_size=3), whole, rtol=1e-4, atol=1e-6)
    scale = np.trace(np.cov(whole, rowvar=False))
    assert abs(perceptual.fid_from_features(whole, whole)) < 1e-6 * scale
    assert perceptual.fid(inception, x, y, batch_size=3) > 1e-3 * scale


# ---------------------------------------------------------------------------------------------- bench

def test_bench_without_weights_writes_no_perceptual_metrics(tmp_path, image_dir):
    imgs = bench.load_bench_images(str(image_dir), 32, 2)
    cols = bench.parse_columns("sr4")
    rows = bench.run_bench(GaussianPrior(0.0, 0.5, image_size=32), cols, ["bicubic"], imgs, tmp_path)
    bench.write_tables(rows, tmp_path, ["bicubic"], cols)
    assert all("lpips" not in r for r in rows)
    assert not (tmp_path / "table_lpips.md").exists() and not (tmp_path / "fid_features").exists()


def test_bench_cli_with_lpips_and_fid_weights(capsys, tmp_path, image_dir, tiny_prior_dir, alex_files,
                                              inception_file):
    args = ["bench", "--tasks", "sr4", "--methods", "bicubic,hrdis", "--images", image_dir, "--n", 3, "--steps", 2,
            "--figures", 0, "--prior", tiny_prior_dir, "--out", tmp_path,
            "--lpips-weights", f"{alex_files[0]},{alex_files[1]}", "--fid-weights", inception_file[0]]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["lpips"] > 0 for r in rows)
    lpips_md = (tmp_path / "table_lpips.md").read_text()
    assert "| lpips | sr4 |" in lpips_md and "LPIPS v0.1" in lpips_md
    fid_md = (tmp_path / "table_fid.md").read_text()
    cells = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in fid_md.splitlines()
             if line.startswith("| bicubic") or line.startswith("| hrdis")}
    assert set(cells) == {"bicubic", "hrdis"} and all(float(v) > 0 for v in cells.values())
    assert "Over 3 images per cell." in fid_md and "table_fid.md" in capsys.readouterr().out
    # The truths' features, scored as restorations, give an FID of zero (same images, same network).
    truths = np.stack([np.load(bench.fid_feature_path(tmp_path, f"truth|{i:06d}.png")) for i in (1, 2, 3)])
    assert abs(perceptual.fid_from_features(truths, truths)) < 1e-6 * np.trace(np.cov(truths, rowvar=False))


def test_bench_cli_perceptual_flag_errors(capsys, tmp_path, image_dir, tiny_prior_dir, alex_files):
    common = ["bench", "--tasks", "sr4", "--methods", "bicubic", "--images", str(image_dir), "--n", "1",
              "--prior", str(tiny_prior_dir), "--out", str(tmp_path)]
    assert main(common + ["--lpips-weights", str(alex_files[0])]) == 2
    assert "two paths separated by a comma" in capsys.readouterr().err
    assert main(common + ["--fid-weights", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1
    assert not (tmp_path / "rows.jsonl").exists()  # failed before running any cell
