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
