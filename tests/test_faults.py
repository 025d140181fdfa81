"""Faults in training: a NaN loss stops the run with a clear message and the last good
checkpoint kept; a re-run resumes from it and ends with the weights of a run that was never
interrupted. Real Lightning, a tiny real model; the NaN comes from a data item."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from PIL import Image

from genixer.models import build_tokenizer, build_vlm, processor_for
from genixer.training.fit import fit
from genixer.training.module import NonFiniteLossError
from genixer.training.resume import (
    LAST,
    ReplaySampler,
    checkpoint_step,
    drop_checkpoints,
    last_checkpoint,
)
from tests.conftest import CPU_TRAINER, TINY_VLM_SPEC

SPEC = TINY_VLM_SPEC | {"max_position_embeddings": 128}
TRAINER = CPU_TRAINER
N, BATCH, STEPS, SEED = 12, 4, 8, 3  # 3 batches an epoch: the run crosses two epoch ends
TRAIN = {"steps": STEPS, "batch_size": BATCH, "lr": 1e-3, "warmup_ratio": 0.03, "trainable": "all"}
RUN = {"train": TRAIN, "trainer_cfg": TRAINER, "seed": SEED}
COLOURS = ["red", "green", "blue", "yellow", "white", "black"]


class Items(list):
    """What ``fit`` needs of a dataset: items, and the skip counts it reports."""

    skipped: dict = {}


@pytest.fixture(scope="module")
def setup():
    corpus = [f"What colour is it? It is {c}." for c in COLOURS] * 5
    tok = build_tokenizer(corpus, vocab_size=300)
    proc = processor_for(build_vlm(SPEC, tok), tok)
    clean = Items(
        proc.encode(
            Image.new("RGB", (32, 32), COLOURS[i % 6]),
            [("What colour is it?", f"It is {COLOURS[i % 6]}.")],
        )
        for i in range(N)
    )
    return tok, proc, clean


def new_model(tok):
    torch.manual_seed(0)
    return build_vlm(SPEC, tok)


def poisoned(clean: Items, index: int) -> Items:
    bad = Items(dict(it) for it in clean)
    bad[index] = dict(
        bad[index], pixel_values=torch.full_like(bad[index]["pixel_values"], torch.nan)
    )
    return bad


def test_replay_sampler_continues_mid_epoch_exactly():
    whole = ReplaySampler(10, seed=5, batch_size=4, drop_last=True)
    epochs = [list(whole) for _ in range(3)]
    resumed = ReplaySampler(10, seed=5, batch_size=4, drop_last=True)
    resumed.start_at(1, 4)  # one batch of epoch 1 already trained
    assert list(resumed) == epochs[1][4:]
    assert list(resumed) == epochs[2]
    assert sorted(epochs[0]) == list(range(10)) and epochs[0] != epochs[1]


def test_nan_loss_stops_keeps_the_last_good_checkpoint_and_a_rerun_resumes_exactly(setup, tmp_path):
    tok, proc, clean = setup
    # Poison the item the epoch-0 order puts in the second batch: the loss is NaN at step 1.
    first_epoch = ReplaySampler(N, SEED, batch_size=BATCH, drop_last=True).permutation(0)
    bad = poisoned(clean, first_epoch[BATCH + 1])
    log_dir = tmp_path / "stage" / "logs"

    with pytest.raises(NonFiniteLossError) as err:
        fit(new_model(tok), bad, proc.collate, **RUN, log_dir=log_dir, checkpoint_every=1)
    message = str(err.value)
    assert "loss is nan at step 1" in message
    assert "last good checkpoint" in message and "step 1" in message
    ckpt = log_dir / "checkpoints" / LAST
    assert checkpoint_step(ckpt) == 1
    weights = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values())

    # The data fixed, the same call resumes at step 1 and ends where a clean run ends.
    resumed = new_model(tok)
    info = fit(resumed, clean, proc.collate, **RUN, log_dir=log_dir, checkpoint_every=1)
    assert info["resumed_from_step"] == 1 and info["steps"] == STEPS
    straight = new_model(tok)
    ref = fit(straight, clean, proc.collate, **RUN, log_dir=tmp_path / "ref" / "logs")
    assert ref["resumed_from_step"] is None
    a, b = resumed.state_dict(), straight.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # A finished run re-run restores its last checkpoint and trains no further.
    again = new_model(tok)
    info = fit(again, clean, proc.collate, **RUN, log_dir=log_dir, checkpoint_every=1)
    assert info["resumed_from_step"] == STEPS
    assert all(torch.equal(again.state_dict()[k], b[k]) for k in b)
    assert drop_checkpoints(tmp_path / "stage") == 1 and last_checkpoint(log_dir) is None


def test_an_unreadable_checkpoint_is_moved_aside(tmp_path):
    ckpt = tmp_path / "logs" / "checkpoints" / LAST
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"half a checkpoint")
    assert last_checkpoint(tmp_path / "logs") is None
    assert not ckpt.exists() and ckpt.with_suffix(".ckpt.bad").exists()
