"""Training: a few steps on a tiny folder, atomic checkpoints, resume, and the exported prior."""

import json

import pytest
import torch
from PIL import Image

from hrdis import load_prior
from hrdis.training import TrainOptions, train

from conftest import TINY_CONFIG


@pytest.fixture
def tiny_folder(tmp_path):
    from skimage import data

    base = Image.fromarray(data.astronaut())
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(8):
        base.crop((i * 20, i * 10, i * 20 + 300, i * 10 + 300)).resize((40, 48)).save(folder / f"{i:06d}.png")
    return folder


def test_train_checkpoint_resume_and_export(tmp_path, tiny_folder):
    out = tmp_path / "run"
    opts = TrainOptions(data=str(tiny_folder), out=str(out), size=32, steps=2, batch=4, max_index=None,
                        val_fraction=0.25, checkpoint_minutes=0.0)
    train(opts, config=TINY_CONFIG)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    with pytest.raises(FileExistsError, match="--resume"):
        train(opts, config=TINY_CONFIG)

    first = torch.load(out / "checkpoint.pt", weights_only=False)
    train(TrainOptions(**{**opts.__dict__, "steps": 4, "resume": True}))
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["step"] == 2 and resumed["step"] == 4 and resumed["seen"] == 16
    assert not torch.equal(first["model"]["out.2.weight"], resumed["model"]["out.2.weight"])

    prior = load_prior(out / "prior")
    assert prior.meta["trained_steps"] == 4 and prior.image_size == 32
    assert prior.eps(torch.zeros(1, 3, 32, 32), 500).shape == (1, 3, 32, 32)
    assert not list(out.glob("*.tmp")) and not list((out / "prior").glob(".*.tmp"))


def test_held_out_files_are_never_read(tmp_path, tiny_folder):
    from hrdis.training import load_dataset

    assert len(load_dataset(str(tiny_folder), 32, max_index=5)) == 6  # files 000000..000005
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no training images"):
        load_dataset(str(empty), 32, max_index=None)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, tiny_folder):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainOptions(data=str(tiny_folder), out=str(tmp_path / "none"), size=32, resume=True))


def test_learning_rate_warms_up_holds_then_anneals_to_lr_min():
    from hrdis.training import learning_rate

    opts = TrainOptions(data="-", out="-", steps=1000, lr=1e-3, warmup=10, lr_decay_steps=200, lr_min=1e-5)
    assert learning_rate(0, opts) == pytest.approx(1e-4)
    assert learning_rate(500, opts) == 1e-3 and learning_rate(800, opts) == pytest.approx(1e-3)
    assert learning_rate(900, opts) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(999, opts) == pytest.approx(1e-5, rel=1e-2)
    lrs = [learning_rate(s, opts) for s in range(800, 1000)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert learning_rate(999, TrainOptions(data="-", out="-", steps=1000, lr=1e-3, lr_decay_steps=0)) == 1e-3


def test_a_stop_request_writes_a_checkpoint_and_stops(tmp_path, tiny_folder):
    out = tmp_path / "run"
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) >= 3

    opts = TrainOptions(data=str(tiny_folder), out=str(out), size=32, steps=100, batch=2, max_index=None,
                        val_fraction=0.25, checkpoint_minutes=60.0)
    train(opts, config=TINY_CONFIG, should_stop=stop_after_three)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3
    with pytest.raises(ValueError, match="lr-decay-steps"):
        train(TrainOptions(**{**opts.__dict__, "lr_decay_steps": 101, "resume": True}), config=TINY_CONFIG)


def _disc_context(c: int = 96, radius: float = 6.0) -> torch.Tensor:
    """One context square, black with a white disc at its centre, as uint8 (1, 3, c, c)."""
    yy, xx = torch.meshgrid(torch.arange(c) + 0.5, torch.arange(c) + 0.5, indexing="ij")
    disc = ((yy - c / 2) ** 2 + (xx - c / 2) ** 2 <= radius ** 2).to(torch.uint8) * 255
    return disc.expand(1, 3, c, c).contiguous()


def _centroid_and_area(crop: torch.Tensor) -> tuple[float, float, float]:
    w = crop[0, 0].float() / 255
    yy, xx = torch.meshgrid(torch.arange(w.shape[0]) + 0.5, torch.arange(w.shape[1]) + 0.5, indexing="ij")
    return float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum()), float(w.sum())


def test_augmented_crops_stay_within_the_stated_zoom_and_shift():
    from hrdis.training import context_zoom, crops_of_context, random_crops

    scale, shift, size = 0.15, 0.08, 32
    zc = context_zoom(scale, shift)
    assert zc == pytest.approx(1 / (1.15 * 1.16))  # wider than the loose crop (zoom 0.8)
    ctx = _disc_context()
    _, _, area_1 = _centroid_and_area(crops_of_context(ctx, size, zc, torch.ones(1), torch.zeros(1, 2)))
    gen = torch.Generator().manual_seed(0)
    xs, ys, zooms = [], [], []
    for _ in range(200):
        x, y, area = _centroid_and_area(random_crops(ctx, size, zc, scale, shift, gen))
        xs.append(x / size - 0.5)
        ys.append(y / size - 0.5)
        zooms.append((area / area_1) ** 0.5)
    # The disc sits at the centre of the unaugmented crop: it moves opposite to the crop, by at most `shift`
    # of the side, and its apparent size is the crop's zoom.
    assert max(map(abs, xs + ys)) <= shift * 1.02 + 0.01
    assert max(map(abs, xs)) > shift * 0.8 and max(map(abs, ys)) > shift * 0.8
    assert 1 / 1.15 - 0.03 <= min(zooms) < 0.92 and 1.1 < max(zooms) <= 1.15 + 0.03
    assert not torch.equal(random_crops(ctx, size, zc, 0.0, 0.0, gen),
                           random_crops(ctx, size, zc, scale, shift, gen))


def test_augment_fraction_keeps_the_rest_at_celebas_crop():
    from hrdis.training import context_zoom, crops_of_context, random_crops

    scale, shift, size = 0.15, 0.08, 32
    zc = context_zoom(scale, shift)
    ctx = _disc_context().expand(400, -1, -1, -1)
    plain = crops_of_context(ctx[:1], size, zc, torch.ones(1), torch.zeros(1, 2))
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_crops(ctx[:8], size, zc, scale, shift, gen, fraction=0.0), plain.expand(8, -1, -1, -1))
    unchanged = (random_crops(ctx, size, zc, scale, shift, gen, fraction=0.3) == plain).flatten(1).all(1)
    assert 0.62 < unchanged.float().mean() < 0.78  # 70% kept, binomial s.e. 2.3%


def test_the_validation_crops_match_the_benchmark_crops(tmp_path):
    """Crops taken from the stored context squares agree with ``images.face_crop`` of the original file, up
    to the sub-pixel rounding of ``images.crop_box``: each is far closer to the same crop than to the others."""
    import numpy as np
    from skimage import data

    from hrdis import images
    from hrdis.training import context_zoom, crops_of_context, load_dataset

    im = Image.fromarray(data.astronaut()).crop((100, 0, 400, 368)).resize((89, 109), Image.Resampling.LANCZOS)
    im.save(tmp_path / "000001.png")  # CelebA's file size
    zc = context_zoom(0.15, 0.08)
    ctx = load_dataset(str(tmp_path), 129, max_index=None, zoom=zc)
    direct = {c: torch.from_numpy(np.array(images.face_crop(im, 64, crop=c))).float() for c in images.CROPS}
    for crop, zoom in images.CROPS.items():
        ours = crops_of_context(ctx, 64, zc, torch.full((1,), zoom), torch.zeros(1, 2))[0].permute(1, 2, 0).float()
        err = {c: float((ours - d).abs().mean()) for c, d in direct.items()}
        assert err[crop] < 12 and err[crop] < 0.5 * min(v for c, v in err.items() if c != crop), (crop, err)


def test_training_exports_the_checkpoint_with_the_best_mean_over_three_crops(tmp_path, tiny_folder):
    out = tmp_path / "run"
    opts = TrainOptions(data=str(tiny_folder), out=str(out), size=32, steps=3, batch=4, max_index=None,
                        val_fraction=0.25, checkpoint_minutes=0.0)
    train(opts, config=TINY_CONFIG)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(set(r["heldout_loss_crops"]) == {"celeba", "tight", "loose"} for r in log)
    means = [sum(r["heldout_loss_crops"].values()) / 3 for r in log]
    best = min(range(len(log)), key=means.__getitem__)
    assert log[0]["exported"] and [r["exported"] for r in log] == [m <= min(means[:i + 1]) for i, m in enumerate(means)]
    prior = load_prior(out / "prior")
    assert prior.meta["trained_steps"] == log[best]["step"]
    assert prior.meta["heldout_loss_crops"] == log[best]["heldout_loss_crops"]
    with pytest.raises(ValueError, match="augment-scale"):
        train(TrainOptions(**{**opts.__dict__, "out": str(tmp_path / "bad"), "augment_scale": 2.0}))


def test_network_shape_flags_train_that_network_and_refuse_impossible_widths(tmp_path, tiny_folder, capsys):
    """``hrdis train --channels/--res-blocks/--channel-mult`` shape a new network (the exported prior has it);
    impossible widths, and shape flags on a resumed run, are one-line errors."""
    from hrdis.cli import main

    out = tmp_path / "run"
    base = ["train", "--data", str(tiny_folder), "--out", str(out), "--size", "32", "--batch", "2",
            "--max-index", "-1", "--checkpoint-minutes", "0"]
    assert main(base + ["--steps", "1", "--channels", "64", "--res-blocks", "2", "--channel-mult", "1,2"]) == 0
    cfg = load_prior(out / "prior").unet.config
    assert (cfg.num_channels, cfg.num_res_blocks, list(cfg.channel_mult), cfg.image_size) == (64, 2, [1, 2], 32)
    capsys.readouterr()
    for extra, message in [(["--channels", "48"], "multiple of 32"), (["--channel-mult", "1,x"], "integers"),
                           (["--res-blocks", "0"], "at least 1"), (["--resume", "--channels", "64"], "new network")]:
        assert main(base + ["--steps", "2", "--out", str(tmp_path / "other"), *extra]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_training_on_a_missing_device_is_a_clear_error(tmp_path, tiny_folder):
    opts = TrainOptions(data=str(tiny_folder), out=str(tmp_path / "run"), size=32, steps=1, batch=2,
                        max_index=None, device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        train(opts, config=TINY_CONFIG)
    with pytest.raises(ValueError, match="not a device PyTorch knows"):
        train(TrainOptions(**{**opts.__dict__, "device": "gpu"}), config=TINY_CONFIG)


def test_accelerator_script_trains_and_exports_float16_weights_on_the_cpu(tmp_path, tiny_folder):
    """scripts/train_accelerator.sh end to end at a tiny scale on the CPU: probe, timed run, float16 export."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_accelerator.sh"
    env = {**os.environ, "DEVICE": "cpu", "MINUTES": "0.01", "BATCH": "2", "PROBE_STEPS": "2", "SIZE": "32",
           "MULT": "1,2", "RES_BLOCKS": "1", "RUN": str(tmp_path / "run")}
    done = subprocess.run(["bash", str(script), str(tmp_path / "out"), str(tiny_folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    prior = load_prior(tmp_path / "out" / "prior")
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert prior.meta["trained_steps"] == log[-1]["step"] > 2 and "train_accelerator.sh" in prior.meta["history"]
    from safetensors.torch import load_file
    assert {t.dtype for t in load_file(str(tmp_path / "out" / "prior" / "model.safetensors")).values()} == {torch.float16}


@pytest.mark.parametrize("resblock_updown", [True, False])
def test_deepening_computes_the_same_function_with_more_blocks(resblock_updown):
    """unet.deepen: every new block starts as the identity, from any trained depth (random weights stand in for
    trained ones, the zero-initialised layers included), at levels with and without attention."""
    from hrdis.unet import ADMConfig, ADMUNet, deepen

    def randomised(net):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        return net

    torch.manual_seed(0)
    cfg = ADMConfig(image_size=32, num_channels=32, num_res_blocks=1, attention_resolutions=[16, 8],
                    channel_mult=[1, 2, 2], num_head_channels=32, resblock_updown=resblock_updown)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10.0, 700.0])
    for net, depth in [(randomised(ADMUNet(cfg)), 3), (randomised(deepen(ADMUNet(cfg), 2)), 4)]:
        deeper = deepen(net, depth)
        assert deeper.config.num_res_blocks == depth
        assert sum(p.numel() for p in deeper.parameters()) > sum(p.numel() for p in net.parameters())
        with torch.no_grad():
            want = net(x, t)
            assert want.abs().mean() > 0.1
            torch.testing.assert_close(deeper(x, t), want, rtol=0, atol=1e-5)
            deeper.output_blocks[1][0].out_layers[-1].weight.add_(0.05)  # a new block's weights count
            assert (deeper(x, t) - want).abs().max() > 1e-3
    with pytest.raises(ValueError, match="at least"):
        deepen(net, 1)


def test_a_warm_start_warms_up_from_its_own_step():
    from hrdis.training import learning_rate

    opts = TrainOptions(data="-", out="-", steps=9000, lr=1e-3, warmup=100)
    assert learning_rate(8300, opts, start=8300) == pytest.approx(1e-5)
    assert learning_rate(8349, opts, start=8300) == pytest.approx(5e-4)
    assert learning_rate(8399, opts, start=8300) == learning_rate(8300, opts) == 1e-3


def test_init_from_with_res_blocks_grows_the_prior_without_changing_it(tmp_path, tiny_folder, capsys):
    """``hrdis train --init-from P --res-blocks 2``: the starting held-out losses (the first log line) are
    those of P itself, the exported prior has the deeper network and records the growth, and the run warms up."""
    from hrdis.cli import main

    base = ["train", "--data", str(tiny_folder), "--size", "32", "--batch", "2", "--max-index", "-1",
            "--checkpoint-minutes", "0", "--no-bf16"]
    assert main(base + ["--out", str(tmp_path / "p"), "--steps", "3"]) == 0
    prior = tmp_path / "p" / "prior"
    for name, extra in [("same", []), ("deeper", ["--res-blocks", "2"])]:
        assert main(base + ["--out", str(tmp_path / name), "--steps", "5", "--init-from", str(prior), *extra]) == 0
    logs = {name: [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
            for name in ("same", "deeper")}
    assert logs["same"][0]["step"] == logs["deeper"][0]["step"] == 3
    for crop, loss in logs["same"][0]["heldout_loss_crops"].items():
        assert logs["deeper"][0]["heldout_loss_crops"][crop] == pytest.approx(loss, rel=1e-5)
    assert logs["deeper"][-1]["heldout_loss_crops"] != logs["deeper"][0]["heldout_loss_crops"]
    grown = load_prior(tmp_path / "deeper" / "prior")
    assert grown.unet.config.num_res_blocks == 2 and grown.meta.get("grown", {}).get("from_res_blocks") == 1
    assert torch.load(tmp_path / "deeper" / "checkpoint.pt", weights_only=False)["opt_start"] == 3
    capsys.readouterr()
    for out, extra, message in [("other", ["--init-from", str(prior), "--res-blocks", "0"], "at least"),
                                ("deeper", ["--resume", "--res-blocks", "2"], "resumed run")]:
        assert main(base + ["--out", str(tmp_path / out), "--steps", "7", *extra]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
