"""The contract every model family keeps, tested once for all of them (the role of
transformers' ``ModelTesterMixin``): a tiny model built from config saves as safetensors
only, loads back by path with the same outputs, and a folder holding only pickled weights,
or nothing, is refused with an error that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from genixer.models.weights import PickleOnlyError

CORPUS = ["What is it? a red square", "Is it red? Yes No", "Describe the region."] * 4


def image(color: str = "red") -> Image.Image:
    img = Image.new("RGB", (48, 48), "white")
    img.paste(color, (8, 8, 40, 40))
    return img


class ModelContract:
    """Subclasses say how to build, save, load and probe one family's tiny model."""

    def build(self):
        raise NotImplementedError

    def save(self, model, folder: Path) -> None:
        raise NotImplementedError

    def load(self, folder: Path):
        raise NotImplementedError

    def probe(self, model) -> torch.Tensor:
        """A deterministic output of the model on fixed inputs."""
        raise NotImplementedError

    def test_saves_safetensors_and_loads_back_with_the_same_outputs(self, tmp_path):
        torch.manual_seed(0)
        model = self.build().eval()
        self.save(model, tmp_path / "m")
        files = {p.suffix for p in (tmp_path / "m").iterdir()}
        assert ".safetensors" in files and not files & {".bin", ".pt", ".pth", ".pkl"}
        loaded = self.load(tmp_path / "m").eval()
        with torch.no_grad():
            assert torch.equal(self.probe(model), self.probe(loaded))

    def test_a_pickle_only_folder_is_refused_with_the_conversion(self, tmp_path):
        torch.manual_seed(0)
        model = self.build()
        self.save(model, tmp_path / "m")
        for weights in (tmp_path / "m").glob("*.safetensors"):
            weights.unlink()
        torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
        with pytest.raises(PickleOnlyError, match="pickled") as err:
            self.load(tmp_path / "m")
        assert "safetensors" in str(err.value)

    def test_a_missing_folder_is_refused(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            self.load(tmp_path / "nothing")


VLM_SPEC = {
    "image_size": 48,
    "patch_size": 16,
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "vision_intermediate": 32,
    "text_hidden": 32,
    "text_layers": 1,
    "text_heads": 2,
    "text_intermediate": 64,
    "projector_type": "mlp2x_gelu",
    "vision_feature_layer": -1,
    "vision_feature_select_strategy": "default",
    "vision_pos_init_std": None,
    "max_position_embeddings": 256,
}


class TestGenixerL(ModelContract):
    projector = "mlp2x_gelu"

    def build(self):
        from genixer.models.llava.model import build_vlm
        from genixer.models.tokenizer import build_tokenizer

        self.tokenizer = build_tokenizer(CORPUS, vocab_size=300)
        return build_vlm(VLM_SPEC | {"projector_type": self.projector}, self.tokenizer)

    def save(self, model, folder):
        from genixer.models.llava.model import save_vlm

        save_vlm(model, folder)

    def load(self, folder):
        from genixer.models.llava.model import load_vlm

        return load_vlm(folder)

    def probe(self, model):
        from genixer.models.llava.model import processor_for

        proc = processor_for(model, self.tokenizer, max_length=128)
        return model(
            **proc.collate([proc.encode(image(), [("What is it?", "a red square")])])
        ).logits


class TestGenixerS(TestGenixerL):
    """Shikra's architecture: the same model code with ONE linear projector."""

    projector = "linear"

    def test_the_projector_survives_the_round_trip(self, tmp_path):
        from genixer.models.llava.model import LinearProjector

        self.save(self.build(), tmp_path / "m")
        assert isinstance(self.load(tmp_path / "m").model.multi_modal_projector, LinearProjector)


class TestFuyuJudge(ModelContract):
    def build(self):
        from genixer.models.fuyu.model import build_judge
        from genixer.models.tokenizer import build_tokenizer

        self.tokenizer = build_tokenizer(CORPUS, vocab_size=300)
        spec = {"image_size": 48, "patch_size": 16, "hidden": 32, "layers": 1, "heads": 2}
        return build_judge(
            spec | {"intermediate": 64, "max_position_embeddings": 256}, self.tokenizer
        )

    def save(self, model, folder):
        from genixer.models.fuyu.model import save_judge

        save_judge(model, folder)

    def load(self, folder):
        from genixer.models.fuyu.model import load_judge

        return load_judge(folder)

    def probe(self, model):
        from genixer.models.fuyu.processor import JudgeProcessor
        from genixer.models.judging import yes_probability

        proc = JudgeProcessor.for_model(model, self.tokenizer)
        items = [(image(c), "Is it red? Answer Yes or No.") for c in ("red", "blue")]
        return torch.tensor(yes_probability(model, proc, items))


class TestClip(ModelContract):
    spec = {
        "embed_dim": 16,
        "image_size": 32,
        "patch_size": 16,
        "vision_width": 32,
        "vision_layers": 1,
        "vision_heads": 2,
        "text_width": 32,
        "text_layers": 1,
        "text_heads": 2,
        "context_length": 16,
        "vocab_size": 49408,
    }

    def build(self):
        from genixer.models.clip.model import build_clip

        return build_clip(self.spec)

    def save(self, model, folder):
        from genixer.models.clip.model import save_clip

        save_clip(model, self.spec, folder)

    def load(self, folder):
        from genixer.models.clip.model import load_clip

        return load_clip(folder)

    def probe(self, model):
        from genixer.models.clip.model import clip_tokenizer
        from genixer.models.clip.scorer import CropScorer

        scorer = CropScorer(model, clip_tokenizer(16), 32, min_crop_px=4)
        items = [(image(c), (0.1, 0.1, 0.9, 0.9), f"the {c} square") for c in ("red", "blue")]
        return torch.tensor(scorer.score(items))
