"""CLIP-driven REC filter: tiny open_clip CLIP, io, crops, scoring modes, batching, training
(through Lightning: trainer config, determinism, exact resume)."""

from __future__ import annotations

import math
import random

import numpy as np
import open_clip
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from genixer.core.boxes import iou
from genixer.models.clip.model import (
    WEIGHTS_NAME,
    build_clip,
    clip_tokenizer,
    load_openai_clip,
    save_clip,
)
from genixer.models.clip.scorer import CropScorer
from genixer.models.clip.train import ContrastiveModule, collate_pairs, contrastive_loss, train_clip
from genixer.training.resume import LAST, checkpoint_step
from tests.conftest import CPU_TRAINER

SPEC = {
    "embed_dim": 32,
    "image_size": 32,
    "patch_size": 8,
    "vision_width": 64,
    "vision_layers": 1,
    "vision_heads": 2,
    "text_width": 64,
    "text_layers": 1,
    "text_heads": 2,
    "context_length": 16,
    "vocab_size": 49408,
}
TRAINER = CPU_TRAINER
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny ops on a shared 2-core box: more threads only contend (50x slower here).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_clip(SPEC), clip_tokenizer(SPEC["context_length"])


def scorer(tiny, **kw) -> CropScorer:
    model, tok = tiny
    kw.setdefault("min_crop_px", 8)
    return CropScorer(model, tok, SPEC["image_size"], **kw)


def noisy_image(w: int, h: int, seed: int) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def items(n: int) -> list:
    texts = ["the red object", "a small dog", "left cup", "the man on the right", "blue sky"]
    return [
        (noisy_image(120, 90, i), (0.1 * (i % 3), 0.05, 0.6 + 0.1 * (i % 4), 0.95), texts[i % 5])
        for i in range(n)
    ]


def test_tokenizer_is_open_clip_offline():
    tok = clip_tokenizer(16)
    ids = tok(["The red object", "x " * 40])
    assert ids.shape == (2, 16) and ids.dtype == torch.long
    sot, eot = tok.sot_token_id, tok.eot_token_id
    assert ids[0, 0] == sot and eot in ids[0].tolist()
    assert ids[1, -1] == eot  # truncated text keeps its end token (text pooling reads it)
    assert torch.equal(tok(["the red object"]), ids[:1])  # lower-cased


def test_build_is_open_clip_and_spec_checked(tiny):
    model, _ = tiny
    assert isinstance(model, open_clip.model.CLIP)
    assert model.visual.image_size == (32, 32) and model.context_length == 16
    with pytest.raises(ValueError, match="missing"):
        build_clip({k: v for k, v in SPEC.items() if k != "text_heads"})
    with pytest.raises(ValueError, match="vocab_size"):
        build_clip({**SPEC, "vocab_size": 1000})
    with pytest.raises(ValueError, match="unknown"):
        build_clip({**SPEC, "visoin_width": 64})


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_load_openai_clip_local_file_stand_in(tmp_path, monkeypatch):
    # A tiny QuickGELU model registered under a config name stands in for ViT-L-14.
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 64,
            "heads": 1,
            "layers": 1,
        },
    }
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "genixer-tiny-test", cfg)
    torch.manual_seed(1)
    ref = build_clip({**SPEC, "vision_heads": 1, "text_heads": 1, "quick_gelu": True})
    save_clip(ref, {**SPEC, "vision_heads": 1, "text_heads": 1, "quick_gelu": True}, tmp_path)
    got = load_openai_clip(tmp_path / WEIGHTS_NAME, model_name="genixer-tiny-test")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(got.encode_image(x), ref.encode_image(x), atol=1e-6)
    # OpenAI's own .pt is a TorchScript archive: read only on request (weights go via fp16)
    jit_path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.trace_module(ref, {"encode_image": (x,)}), jit_path)
    with pytest.raises(ValueError, match="TorchScript"):
        load_openai_clip(jit_path)
    from_jit = load_openai_clip(jit_path, allow_torchscript=True)
    with torch.no_grad():
        assert torch.allclose(from_jit.encode_image(x), ref.encode_image(x), atol=1e-2)
    # never a tag: "openai" is not a local file, so nothing is downloaded
    with pytest.raises(FileNotFoundError):
        load_openai_clip("openai")
    bad = tmp_path / "w.bin"
    torch.save({"a": torch.zeros(1)}, bad)
    with pytest.raises(ValueError):
        load_openai_clip(bad)


def test_crop_edges_and_clipping(tiny):
    sc = scorer(tiny, min_crop_px=50)
    img = Image.new("RGB", (200, 100))
    # touches the right edge
    assert sc.crop(img, (0.5, 0.0, 1.0, 1.0)).size == (100, 100)
    # partly outside: negative and > 1 values clipped to the image
    assert sc.crop(img, (-0.2, -0.1, 0.3, 1.3)).size == (60, 100)
    # rounded outward: 10.4..70.6 px -> 10..71
    assert sc.pixel_box(img, (0.052, 0.1, 0.353, 0.9)) == (10, 10, 71, 90)
    # float noise does not widen an exact box (0.3 * 200 = 60.00000000000001)
    assert sc.pixel_box(img, (0.1, 0.0, 0.3, 0.5)) == (20, 0, 60, 50)


def test_small_or_bad_crops_skipped_and_counted(tiny):
    sc = scorer(tiny, min_crop_px=50)
    img = Image.new("RGB", (200, 100))
    assert sc.crop(img, (0.0, 0.0, 0.24, 1.0)) is None  # 48 px wide
    assert sc.crop(img, (0.0, 0.0, 0.25, 1.0)).size == (50, 100)  # exactly 50: kept
    assert sc.crop(img, (0.9, 0.0, 1.4, 1.0)) is None  # clipped to 20 px
    scores = sc.score(
        [
            (img, (0.0, 0.0, 0.24, 1.0), "a cat"),
            (img, (0.0, 0.0, 0.5, 1.0), "   "),
            (img, (1.2, 0.0, 1.5, 1.0), "a cat"),
            (img, (0.5, 0.0, 0.1, 1.0), "a cat"),
            (img, (0.0, 0.0, 0.5, 1.0), "a cat"),
        ]
    )
    assert scores[:4] == [None] * 4 and isinstance(scores[4], float)
    assert sc.skipped_reasons == {
        "crop_too_small": 1,
        "empty_text": 1,
        "box_outside_image": 1,
        "bad_box": 1,
    }


def test_crop_too_small_threshold_in_pixels(tiny):
    sc = scorer(tiny, min_crop_px=50)
    img = Image.new("RGB", (200, 100))
    assert sc.crop(img, (0.0, 0.0, 0.2, 1.0)) is None  # 40 px wide


def test_cosine_bounded_raw_dot_differs(tiny):
    data = items(8)
    cos = scorer(tiny).score(data)
    raw = scorer(tiny, mode="raw_dot").score(data)
    assert all(-1.0 <= s <= 1.0 for s in cos)
    assert not np.allclose(cos, raw, atol=1e-3)
    with pytest.raises(ValueError):
        scorer(tiny, mode="dot")


def test_deterministic_and_batch_invariant(tiny):
    data = items(5)
    sc = scorer(tiny)
    together = sc.score(data, batch_size=64)
    again = sc.score(data, batch_size=2)
    alone = [sc.score([it])[0] for it in data]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, again, atol=1e-5)


def test_windows_tile_the_image_beside_the_box(tiny):
    sc = scorer(tiny)
    img = Image.new("RGB", (48, 40))
    box = (16, 12, 30, 26)  # 14 x 14 px
    wins = sc.windows(img, box, stride=0.5, max_iou=0.1)
    assert wins and all(b[2] - b[0] == 14 and b[3] - b[1] == 14 for b in wins)
    assert all(min(b) >= 0 and b[2] <= 48 and b[3] <= 40 for b in wins)
    assert all(iou(b, box) <= 0.1 for b in wins) and box not in wins
    assert (0, 0, 14, 14) in wins and (34, 26, 48, 40) in wins  # both far corners reached
    assert len(sc.windows(img, box, stride=0.25, max_iou=0.1)) > len(wins)
    assert sc.windows(img, (0, 0, 48, 40), stride=0.5, max_iou=0.1) == []


def test_margin_is_the_box_against_its_best_rival_window(tiny):
    sc = scorer(tiny)
    data = [
        (noisy_image(120, 90, i), (0.1 * i, 0.1, 0.1 * i + 0.3, 0.45), "a cup") for i in range(3)
    ]
    margins = sc.score(data, batch_size=16, margin=(0.5, 0.1))
    for (image, box, text), m in zip(data, margins, strict=True):
        w, h = image.size
        rivals = [
            (image, (b[0] / w, b[1] / h, b[2] / w, b[3] / h), text)
            for b in sc.windows(image, sc.pixel_box(image, box), 0.5, 0.1)
        ]
        own = sc.score([(image, box, text)])[0]
        assert m == pytest.approx(own - max(sc.score(rivals)), abs=1e-5)
    assert sc.no_rival_window == 0
    # the whole image as the box leaves no rival: the plain similarity, counted
    whole = (data[0][0], (0.0, 0.0, 1.0, 1.0), data[0][2])
    assert sc.score([whole], margin=(0.5, 0.1))[0] == pytest.approx(sc.score([whole])[0])
    assert sc.no_rival_window == 1
    for bad in ((0.0, 0.1), (0.5, 1.0)):  # no step; a max_iou that lets the box rival itself
        with pytest.raises(ValueError, match="margin"):
            sc.score(data, margin=bad)


def test_margin_of_an_expression_that_fits_twice_is_not_positive(tiny):
    # two identical objects on a grid-aligned spot: the rival window is the same crop
    scene = Image.new("RGB", (64, 64), (128, 128, 128))
    for x in (8, 40):  # both on the 8 px window grid of a 16 px box at stride 0.5
        scene.paste(Image.new("RGB", (16, 16), COLORS["red"]), (x, 24))
    box = (8 / 64, 24 / 64, 24 / 64, 40 / 64)
    (m,) = scorer(tiny).score([(scene, box, "the red square")], margin=(0.5, 0.1))
    assert m <= 1e-6


def solid_pairs(per_color: int, seed: int = 0) -> list:
    """Noisy solid-colour crops, each paired with its colour's expression."""
    rng = random.Random(seed)

    def solid(rgb):
        return Image.new(
            "RGB", (32, 32), tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in rgb)
        )

    return [(solid(rgb), f"the {c} object") for c, rgb in COLORS.items() for _ in range(per_color)]


def new_scorer(min_crop_px: int = 16) -> CropScorer:
    torch.manual_seed(0)
    model = build_clip(SPEC)
    return CropScorer(model, clip_tokenizer(SPEC["context_length"]), 32, min_crop_px=min_crop_px)


def fit_clip(scorer, pairs, log_dir, *, trainer=TRAINER, checkpoint_every=0, **train) -> dict:
    train = {"steps": 7, "batch_size": 8, "lr": 1e-3} | train
    return train_clip(
        scorer,
        pairs,
        train=train,
        trainer_cfg=trainer,
        seed=3,
        log_dir=log_dir,
        checkpoint_every=checkpoint_every,
    )


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_contrastive_loss_repeats_are_positives_and_batches_mark_them():
    torch.manual_seed(0)
    img, txt = torch.randn(3, 8), torch.randn(3, 8)
    scale = torch.tensor(math.log(10.0))
    eye = torch.eye(3, dtype=torch.bool)
    assert torch.allclose(contrastive_loss(img, txt, scale), contrastive_loss(img, txt, scale, eye))
    tokens = clip_tokenizer(8)(["a cat", "a dog", "a cat"])
    batch = collate_pairs([(torch.zeros(3, 4, 4), tokens[i], i % 2) for i in range(3)])
    assert batch["positives"].tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert batch["pixels"].shape == (3, 3, 4, 4) and batch["tokens"].shape == (3, 8)
    assert int(batch["attention_mask"].sum()) == int((tokens != 0).sum())
    # the two "a cat" crops are interchangeable: swapping their texts changes nothing
    pos = batch["positives"]
    swapped = txt[[2, 1, 0]]
    assert torch.allclose(
        contrastive_loss(img, txt, scale, pos), contrastive_loss(img, swapped, scale, pos)
    )


def test_training_makes_matching_text_win(tmp_path):
    sc = new_scorer()
    model = sc.model
    out = fit_clip(sc, solid_pairs(32), tmp_path / "logs", steps=100, batch_size=64)
    assert out["steps"] == 100 and out["final_loss"] < out["initial_loss"]
    assert out["examples"] == 128 and out["resumed_from_step"] is None
    assert out["images_seen"] == 100 * 64 and out["steps_per_s"] > 0
    assert not model.training
    assert float(model.logit_scale.detach()) <= math.log(100.0) + 1e-6
    wins = 0
    names = list(COLORS)
    for c, rgb in COLORS.items():
        # a colored object in a gray scene; the box crops it out
        scene = Image.new("RGB", (128, 96), (128, 128, 128))
        scene.paste(Image.new("RGB", (40, 40), rgb), (60, 30))
        box = (60 / 128, 30 / 96, 100 / 128, 70 / 96)
        s = sc.score([(scene, box, f"the {t} object") for t in names])
        wins += int(np.argmax(s) == names.index(c))
    assert wins >= 3


def test_two_identical_fits_give_identical_weights(tmp_path):
    pairs = solid_pairs(6)  # 24 pairs, 3 batches an epoch: 7 steps cross two epoch ends
    a, b = new_scorer(), new_scorer()
    info_a = fit_clip(a, pairs, tmp_path / "a" / "logs")
    info_b = fit_clip(b, pairs, tmp_path / "b" / "logs")
    assert info_a["steps"] == info_b["steps"] == 7
    assert info_a["final_loss"] == info_b["final_loss"]
    assert same_weights(a.model, b.model)
    assert not same_weights(a.model, new_scorer().model)  # it did train


def test_an_interrupted_fit_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    pairs = solid_pairs(6)
    straight = new_scorer()
    ref = fit_clip(straight, pairs, tmp_path / "ref" / "logs")
    log_dir = tmp_path / "stage" / "logs"
    step = ContrastiveModule.training_step

    def killed_at_4(self, batch, batch_idx):
        if self.global_step == 4:
            raise KeyError("killed")  # not a Lightning exception: the run just dies
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ContrastiveModule, "training_step", killed_at_4)
    with pytest.raises(KeyError, match="killed"):
        fit_clip(new_scorer(), pairs, log_dir, checkpoint_every=2)
    assert checkpoint_step(log_dir / "checkpoints" / LAST) == 4
    monkeypatch.setattr(ContrastiveModule, "training_step", step)

    resumed = new_scorer()
    info = fit_clip(resumed, pairs, log_dir, checkpoint_every=2)
    assert info["resumed_from_step"] == 4 and info["steps"] == 7
    assert info["initial_loss"] == ref["initial_loss"]  # kept in the checkpoint
    assert info["final_loss"] == ref["final_loss"]
    assert same_weights(resumed.model, straight.model)


def test_the_trainer_config_is_honoured(tmp_path):
    pairs = solid_pairs(8)  # 4 batches an epoch (Lightning steps at an epoch's end too)
    plain = new_scorer()
    info = fit_clip(plain, pairs, tmp_path / "plain" / "logs", steps=3)
    assert info["steps"] == 3 and info["images_seen"] == 3 * 8  # max_steps from train.steps
    assert all(p.dtype == torch.float32 for p in plain.model.parameters())  # 32-true
    # two batches per optimizer step: 3 steps see 6 batches
    accumulating = OmegaConf.merge(TRAINER, {"accumulate_grad_batches": 2})
    acc = new_scorer()
    info = fit_clip(acc, pairs, tmp_path / "acc" / "logs", steps=3, trainer=accumulating)
    assert info["steps"] == 3 and info["images_seen"] == 6 * 8
    assert not same_weights(acc.model, plain.model)
    # bf16-mixed autocasts the forward pass: fp32 weights, other values
    mixed = new_scorer()
    bf16 = OmegaConf.merge(TRAINER, {"precision": "bf16-mixed"})
    fit_clip(mixed, pairs, tmp_path / "mixed" / "logs", steps=3, trainer=bf16)
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    assert not same_weights(mixed.model, plain.model)


def test_logit_scale_clamped_after_each_optimizer_step(tmp_path):
    sc = new_scorer()
    with torch.no_grad():
        sc.model.logit_scale.fill_(10.0)  # far above ln(100)
    fit_clip(sc, solid_pairs(2), tmp_path / "logs", steps=1, lr=1e-6)
    assert float(sc.model.logit_scale.detach()) == pytest.approx(math.log(100.0))


def test_training_refuses_empty_data(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        fit_clip(new_scorer(), [], tmp_path / "logs")
    with pytest.raises(ValueError, match="empty expression"):
        fit_clip(new_scorer(), [(Image.new("RGB", (32, 32)), "  ")], tmp_path / "logs")
