"""Real-checkpoint paths with tiny stand-ins written in each release's exact layout.

- llava-hf LLaVA-1.5 folders load by path (``load_vlm``), sharded or not;
- ``python -m genixer.convert llava-original`` / ``shikra`` turn the original release
  layouts into the project's format, and the converted model's forward pass equals the
  unconverted model's (rebuilt here from transformers' Llama + CLIP + the projector);
- a Fuyu-8B-layout folder loads for the judge; pickle-only folders are refused with the how-to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionModel,
    FuyuConfig,
    FuyuForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from genixer.convert import main as convert_main
from genixer.models.fuyu.model import load_judge
from genixer.models.fuyu.processor import JudgeProcessor
from genixer.models.judging import yes_probability
from genixer.models.llava.model import load_vlm, processor_for
from genixer.models.weights import PickleOnlyError, ShardWriter

CORPUS = [
    "What is in the image? A red square and a blue circle.",
    "Is 'Question: How many dogs? Answer: 2.' true for this image? Yes No",
    "Where is the cat in the image? [0.120,0.340,0.560,0.910]",
] * 20
VISION = {  # a CLIP ViT in miniature (the real towers: 1024 wide, 24 layers, patch 14)
    "image_size": 32,
    "patch_size": 16,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_act": "quick_gelu",
}
TEXT = {  # Vicuna-7B in miniature
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
}
PROMPT = [("What is in the image?", None)]


def llama_tokenizer(specials: list[str]) -> PreTrainedTokenizerFast:
    """A tiny tokenizer with Llama's fixed ids (<unk> 0, <s> 1, </s> 2) plus ``specials``."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def write_sharded(state: dict[str, torch.Tensor], folder: Path, shards: int = 2) -> None:
    """safetensors shards + model.safetensors.index.json, as the releases ship them."""
    keys = sorted(state)
    per = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * per : (i + 1) * per]}
        save_file(part, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def clip_folder(folder: Path, seed: int) -> CLIPVisionModel:
    """A transformers CLIPModel folder (the openai/clip-vit-large-patch14(-336) layout);
    returns its vision half as a CLIPVisionModel for the reference forward."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config=VISION,
        text_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "hidden_act": "quick_gelu",
        },
        projection_dim=16,
    )
    clip = CLIPModel(config)
    clip.save_pretrained(str(folder))
    tower = CLIPVisionModel(config.vision_config)
    prefix = "vision_model."
    tower.load_state_dict(
        {k[len(prefix) :]: v for k, v in clip.state_dict().items() if k.startswith(prefix)}
    )
    return tower.eval()


def original_config(vocab: int, **mm) -> dict:
    """config.json of an original release (LlavaLlamaForCausalLM / ShikraLlamaForCausalLM)."""
    return {
        **TEXT,
        "vocab_size": vocab,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "use_cache": True,
        "use_mm_proj": True,
        "mm_hidden_size": VISION["hidden_size"],
        "mm_vision_select_layer": -2,
        **mm,
    }


def reference_logits(llama, tower, projector, ids, pixels, image_ids, layer=-2):
    """The unconverted model's forward: CLIP hidden state ``layer`` minus CLS -> projector ->
    spliced into the Llama input embeddings at the image positions (what LLaVA/Shikra do)."""
    feats = projector(tower(pixels, output_hidden_states=True).hidden_states[layer][:, 1:])
    at_image = torch.isin(ids, torch.tensor(image_ids))
    emb = llama.model.embed_tokens(torch.where(at_image, 0, ids))
    emb[at_image] = feats.reshape(-1, feats.shape[-1]).to(emb.dtype)
    return llama(inputs_embeds=emb).logits


def _image() -> Image.Image:
    img = Image.new("RGB", (40, 30), "white")
    img.paste(Image.new("RGB", (20, 15), "red"), (0, 0))
    return img


# ----------------------------------------------------------------------------- llava-hf
LLAVA_HF_NAMES = [  # transformers 5 names -> llava-hf/llava-1.5-7b-hf's safetensors names
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.vision_tower.", "vision_tower.vision_model."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
]


def llava_hf_folder(folder: Path, tok: PreTrainedTokenizerFast):
    """A llava-hf/llava-1.5-7b-hf-layout folder (config, sharded safetensors under the hub's
    names, tokenizer); returns the reference LlavaForConditionalGeneration."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config={**VISION, "model_type": "clip_vision_model"},
        text_config={**TEXT, "model_type": "llama", "vocab_size": len(tok)},
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=4,
    )
    ref = LlavaForConditionalGeneration(config).eval()
    folder.mkdir()
    state = {}
    for k, v in ref.state_dict().items():  # the hub's names (llava-hf/llava-1.5-7b-hf)
        state[next(k.replace(a, b, 1) for a, b in LLAVA_HF_NAMES if k.startswith(a))] = v
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in state
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in state
    assert "multi_modal_projector.linear_1.weight" in state
    write_sharded(state, folder, shards=3)
    config.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return ref


def test_llava_hf_layout_loads_by_path(tmp_path):
    from genixer.models import build_tokenizer

    tok = build_tokenizer(CORPUS, vocab_size=400)  # has <image> and <pad>, as llava-hf's
    folder = tmp_path / "llava-1.5-7b-hf"
    ref = llava_hf_folder(folder, tok)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llava"

    model = load_vlm(folder).eval()
    proc = processor_for(model, tok)
    batch = proc.collate([proc.encode(_image(), PROMPT, generation=True)], "left")
    with torch.no_grad():
        got = model(**batch).logits
        want = ref(**batch).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_load_vlm_refuses_missing_weights(tmp_path):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config={**VISION, "model_type": "clip_vision_model"},
        text_config={**TEXT, "model_type": "llama", "vocab_size": 300},
        image_token_index=299,
    )
    folder = tmp_path / "m"
    LlavaForConditionalGeneration(config).save_pretrained(str(folder))
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys() if "layers.1." not in k}  # noqa: SIM118
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="do not match"):
        load_vlm(folder)


# ----------------------------------------------------------------------------- LLaVA-1.5
@pytest.fixture(scope="module")
def llava_release(tmp_path_factory):
    """liuhaotian/llava-v1.5-7b in miniature + openai/clip-vit-large-patch14-336's layout."""
    root = tmp_path_factory.mktemp("llava")
    tower = clip_folder(root / "clip-vit-large-patch14-336", seed=1)
    tok = llama_tokenizer([])
    torch.manual_seed(2)
    llama = LlamaForCausalLM(LlamaConfig(**TEXT, vocab_size=len(tok), tie_word_embeddings=False))
    projector = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64))
    state = dict(llama.state_dict())
    state.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    state = {k: v.half() for k, v in state.items()}  # the release is float16
    src = root / "llava-v1.5-7b"
    src.mkdir()
    write_sharded(state, src)
    config = original_config(
        len(tok),
        architectures=["LlavaLlamaForCausalLM"],
        model_type="llava",
        mm_projector_type="mlp2x_gelu",
        mm_vision_tower="openai/clip-vit-large-patch14-336",
        mm_vision_select_feature="patch",
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        image_aspect_ratio="pad",
    )
    (src / "config.json").write_text(json.dumps(config))
    tok.save_pretrained(str(src))
    # the reference sees the same float16-rounded weights, in float32
    llama.load_state_dict({k: v.float() for k, v in state.items() if not k.startswith("model.mm")})
    projector.load_state_dict(
        {
            k[len("model.mm_projector.") :]: v.float()
            for k, v in state.items()
            if k.startswith("model.mm")
        }
    )
    return root, src, llama.eval(), tower, projector.eval()


def test_llava_original_conversion_matches_unconverted_forward(llava_release, capsys):
    root, src, llama, tower, projector = llava_release
    out = root / "converted"
    rc = convert_main(
        [
            "llava-original",
            str(src),
            "--vision-tower",
            str(root / "clip-vit-large-patch14-336"),
            "--out",
            str(out),
            "--max-shard-gb",
            "0.0002",
        ]
    )
    assert rc == 0 and str(out) in capsys.readouterr().out
    report = json.loads((out / "conversion.json").read_text())
    assert report["added_tokens"] == ["<image>", "<pad>"]
    assert len(report["weight_files"]) > 1 and (out / "model.safetensors.index.json").is_file()

    model = load_vlm(out).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(str(out))
    assert model.config.projector_type == "mlp2x_gelu"
    assert model.config.vision_feature_layer == -2
    assert model.config.image_start_token is None
    proc = processor_for(model, tok)
    enc = proc.encode(_image(), PROMPT, generation=True)
    batch = proc.collate([enc], "left")
    old_vocab = llama.config.vocab_size
    with torch.no_grad():
        got = model(**batch).logits[..., :old_vocab]
        want = reference_logits(
            llama,
            tower,
            projector,
            batch["input_ids"],
            batch["pixel_values"],
            [proc.image_token_id],
        )
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    # the converted folder refuses to be written over
    with pytest.raises(FileExistsError):
        convert_main(
            [
                "llava-original",
                str(src),
                "--vision-tower",
                str(root / "clip-vit-large-patch14-336"),
                "--out",
                str(out),
            ]
        )


def test_converter_refuses_bad_folders(llava_release, tmp_path):
    root, src, *_ = llava_release
    tower = str(root / "clip-vit-large-patch14-336")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((src / "config.json").read_text())
    (pickled / "pytorch_model-00001-of-00002.bin").write_bytes(b"never unpickled")
    with pytest.raises(PickleOnlyError, match="weights_only=True"):
        convert_main(
            ["llava-original", str(pickled), "--vision-tower", tower, "--out", str(tmp_path / "o")]
        )
    with pytest.raises(PickleOnlyError, match="safetensors"):
        load_vlm(pickled)
    with pytest.raises(ValueError, match="mm_"):  # a plain Llama folder is no LLaVA release
        plain = tmp_path / "plain"
        plain.mkdir()
        (plain / "config.json").write_text(json.dumps({"model_type": "llama"}))
        convert_main(
            ["llava-original", str(plain), "--vision-tower", tower, "--out", str(tmp_path / "o")]
        )


# ----------------------------------------------------------------------------- Shikra
def test_shikra_delta_conversion_matches_unconverted_forward(tmp_path):
    base_tok = llama_tokenizer([])
    tok = llama_tokenizer([])  # Shikra adds its three image tokens to Vicuna's vocabulary
    tok.add_tokens(["<im_patch>", "<im_start>", "<im_end>"], special_tokens=True)
    tower = clip_folder(tmp_path / "clip-vit-large-patch14", seed=3)
    torch.manual_seed(4)
    base = LlamaForCausalLM(
        LlamaConfig(**TEXT, vocab_size=len(base_tok), tie_word_embeddings=False)
    )
    shikra = LlamaForCausalLM(LlamaConfig(**TEXT, vocab_size=len(tok), tie_word_embeddings=False))
    projector = nn.Linear(32, 64)
    base_dir, delta_dir = tmp_path / "vicuna-7b", tmp_path / "shikra-7b-delta-v1"
    base_dir.mkdir()
    delta_dir.mkdir()
    base_state = base.state_dict()
    write_sharded(dict(base_state), base_dir, shards=1)
    (base_dir / "config.json").write_text(json.dumps({**TEXT, "model_type": "llama"}))
    # delta = shikra - base on the base's rows; the extra rows, projector and tower as they are
    delta = {}
    for k, v in shikra.state_dict().items():
        d = v.clone()
        d[: base_state[k].shape[0]] -= base_state[k]
        delta[k] = d
    delta.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    # Shikra's tower is a CLIPVisionModel saved with the model (transformers 4.28 names)
    delta.update({f"model.vision_tower.vision_model.{k}": v for k, v in tower.state_dict().items()})
    write_sharded(delta, delta_dir)
    config = original_config(
        len(tok),
        architectures=["ShikraLlamaForCausalLM"],
        model_type="shikra",
        mm_vision_tower="openai/clip-vit-large-patch14",
        mm_use_im_start_end=True,
        max_sequence_length=256,
    )
    config.pop("max_position_embeddings")
    (delta_dir / "config.json").write_text(json.dumps(config))
    tok.save_pretrained(str(delta_dir))

    out = tmp_path / "shikra-7b"
    convert_main(
        [
            "shikra",
            str(delta_dir),
            "--base",
            str(base_dir),
            "--vision-tower",
            str(tmp_path / "clip-vit-large-patch14"),
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "conversion.json").read_text())
    assert report["vision_tower"] == "checkpoint" and report["image_start_end"] is True
    model = load_vlm(out).eval()
    conv_tok = PreTrainedTokenizerFast.from_pretrained(str(out))
    assert model.config.projector_type == "linear"
    proc = processor_for(model, conv_tok)
    enc = proc.encode(_image(), PROMPT, generation=True)
    ids = enc["input_ids"]
    start, end = (conv_tok.convert_tokens_to_ids(t) for t in ("<im_start>", "<im_end>"))
    first = ids.index(proc.image_token_id)
    assert ids[first - 1] == start and ids[first + model.config.image_seq_length] == end

    batch = proc.collate([enc], "left")
    with torch.no_grad():
        got = model(**batch).logits[..., : len(tok)]
        # Shikra writes <im_patch> where the project writes <image>: same positions
        ref_ids = torch.where(
            batch["input_ids"] == proc.image_token_id,
            tok.convert_tokens_to_ids("<im_patch>"),
            batch["input_ids"],
        )
        want = reference_logits(
            shikra.eval(),
            tower,
            projector,
            ref_ids,
            batch["pixel_values"],
            [tok.convert_tokens_to_ids("<im_patch>")],
        )
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


# ----------------------------------------------------------------------------- Fuyu-8B
FUYU_HUB_NAMES = [  # transformers 5 names -> adept/fuyu-8b's safetensors names
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.vision_embed_tokens.", "vision_embed_tokens."),
]


def fuyu_8b_folder(folder: Path) -> tuple[PreTrainedTokenizerFast, FuyuForCausalLM]:
    """An adept/fuyu-8b-layout folder (flat config, sharded safetensors under the hub's names,
    Fuyu's own tokenizer); returns that tokenizer and the reference model."""
    # Fuyu's own special tokens; no <pad>, and text ends with |ENDOFTEXT|
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "|ENDOFTEXT|", "|SPEAKER|", "|NEWLINE|", "<0x04>"]
    backend.train_from_iterator(
        CORPUS,
        trainer=trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=specials,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="|ENDOFTEXT|",
        eos_token="|ENDOFTEXT|",
        unk_token="<unk>",
    )
    flat = {  # adept/fuyu-8b's config.json keys (flat: FuyuConfig builds text_config)
        "architectures": ["FuyuForCausalLM"],
        "model_type": "fuyu",
        "hidden_act": "relu2",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 256,
        "layer_norm_eps": 1e-5,
        "qk_layernorm": True,
        "partial_rotary_factor": 0.5,
        "rope_theta": 25000.0,
        "image_size": 32,
        "patch_size": 16,
        "num_channels": 3,
        "vocab_size": len(tok),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "image_token_id": tok.convert_tokens_to_ids("|SPEAKER|"),
    }
    torch.manual_seed(5)
    ref = FuyuForCausalLM(
        FuyuConfig(**{k: v for k, v in flat.items() if k != "architectures"})
    ).eval()
    state = {}
    for k, v in ref.state_dict().items():
        new = next(k.replace(a, b, 1) for a, b in FUYU_HUB_NAMES if k.startswith(a))
        state[new] = v
    folder.mkdir()
    write_sharded(state, folder)
    (folder / "config.json").write_text(json.dumps(flat))
    tok.save_pretrained(str(folder))
    return tok, ref


def test_fuyu_8b_layout_loads_for_the_judge(tmp_path):
    folder = tmp_path / "fuyu-8b"
    tok, ref = fuyu_8b_folder(folder)
    judge = load_judge(folder).eval()
    proc = JudgeProcessor(PreTrainedTokenizerFast.from_pretrained(str(folder)), 32, 16)
    assert proc.eos_id == tok.convert_tokens_to_ids("|ENDOFTEXT|")
    items = [(_image(), "Is 'Question: How many dogs? Answer: 2.' true for this image?")] * 2
    got = yes_probability(judge, proc, items)
    want = yes_probability(ref, proc, items)
    assert got == pytest.approx(want, abs=1e-6)

    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing shards"):
        load_judge(folder)


def test_shard_writer_round_trip(tmp_path):
    writer = ShardWriter(tmp_path, max_shard_bytes=64)
    tensors = {f"t{i}": torch.full((8,), float(i)) for i in range(5)}  # 32 bytes each
    for k, v in tensors.items():
        writer.add(k, v)
    files = writer.close()
    assert [f.name for f in files] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    from genixer.models.weights import TensorSource

    source = TensorSource(tmp_path)
    assert set(index["weight_map"]) == set(source.keys()) == set(tensors)
    assert all(torch.equal(source.get(k), v) for k, v in tensors.items())


# ----------------------------------------------------------------------------- OpenAI CLIP
def test_openai_clip_from_a_transformers_folder_for_the_filter(tmp_path):
    """openai/clip-vit-large-patch14 as the HF hub holds it (the Shikra tower's folder)
    loads as an open_clip CLIP with the same image and text features."""
    from genixer.models.clip.model import (
        clip_spec_of,
        clip_tokenizer,
        load_clip,
        load_openai_clip,
        save_clip,
    )

    torch.manual_seed(6)
    config = CLIPConfig(
        vision_config={**VISION, "intermediate_size": 128},  # MLP ratio 4, as OpenAI's
        text_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "hidden_act": "quick_gelu",
            "max_position_embeddings": 16,
            "vocab_size": 49408,
        },
        projection_dim=16,
    )
    hf = CLIPModel(config).eval()
    folder = tmp_path / "clip-vit-large-patch14"
    hf.save_pretrained(str(folder))
    clip = load_openai_clip(folder)
    pixels = torch.randn(2, 3, 32, 32)
    tokens = clip_tokenizer(16)(["a red square", "the dog on the left"])
    with torch.no_grad():
        want_img = hf.get_image_features(pixel_values=pixels).pooler_output
        want_txt = hf.get_text_features(input_ids=tokens).pooler_output
        assert torch.allclose(clip.encode_image(pixels), want_img, atol=1e-5)
        assert torch.allclose(clip.encode_text(tokens), want_txt, atol=1e-5)
    spec = clip_spec_of(clip)  # what the pipeline saves for filter.checkpoint
    assert (spec["image_size"], spec["context_length"], spec["quick_gelu"]) == (32, 16, True)
    save_clip(clip, spec, tmp_path / "saved")
    again = load_clip(tmp_path / "saved")
    with torch.no_grad():
        assert torch.allclose(again.encode_image(pixels), want_img, atol=1e-5)


def test_pipeline_runs_real_checkpoints_with_their_own_tokenizers(compose_cfg, tmp_path):
    """generator.checkpoint and filter.checkpoint bring their own vocabularies (here smaller
    than the project tokenizer's, so pairing them with it would index past the embeddings):
    training, generation and scoring must use the checkpoint's tokenizer."""
    from genixer.filters.base import SCORES
    from genixer.pipeline.artifacts import project_tokenizer, world_splits
    from genixer.pipeline.runner import make_context, run_pipeline
    from genixer.pipeline.stages.train_filter import filter_env
    from tests.conftest import tiny_overrides, truth_records

    llava_tok = llama_tokenizer(["<image>", "<pad>"])
    llava_tok.pad_token = "<pad>"
    llava_hf_folder(tmp_path / "llava-hf", llava_tok)
    fuyu_tok, _ = fuyu_8b_folder(tmp_path / "fuyu-8b")
    cfg = compose_cfg(
        [
            *tiny_overrides(tmp_path),
            f"generator.checkpoint={tmp_path / 'llava-hf'}",
            f"filter.checkpoint={tmp_path / 'fuyu-8b'}",
            "stop_after=select",
        ]
    )
    p = run_pipeline(cfg)
    results = p.results
    assert len(project_tokenizer(results["collect"].path)) > len(llava_tok)  # the larger one
    for stage in ("train_base", "train_generator"):
        saved = PreTrainedTokenizerFast.from_pretrained(str(results[stage].path / "model"))
        assert saved.get_vocab() == llava_tok.get_vocab()
    judge = results["train_judge"]
    judge_tok = PreTrainedTokenizerFast.from_pretrained(str(judge.path / "model"))
    assert judge_tok.get_vocab() == fuyu_tok.get_vocab()
    generated = results["generate"].info
    assert generated["num_records"] + generated["parse_failures"] > 0
    # Two training steps generate no parseable record: score ground-truth ones instead,
    # the way the score stage does (the run's filter, on what the run's stages wrote).
    records = truth_records(world_splits(results["world"].path)["pool"])
    ctx = make_context(cfg)
    env = filter_env(ctx, {"world": results["world"], "collect": results["collect"]})
    (tmp_path / "rescored").mkdir()
    ctx.filter.score(env, judge.path, records, tmp_path / "rescored")
    rows = (tmp_path / "rescored" / SCORES).read_text().splitlines()
    scores = [json.loads(line)["score"] for line in rows]
    assert len(scores) == len(records) and all(0.0 <= s <= 1.0 for s in scores)
