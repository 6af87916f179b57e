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
