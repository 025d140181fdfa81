"""Tiny random-weight checkpoints of current vision-language families, built from config
(no downloads): what the tests and the CPU recipe run ``generator=hf`` / ``filter=vlm_judge``
on. Each family is a config, its processor and its chat template; adding one is a function
here and a line in :data:`FAMILIES`.

The chat templates are written in each family's published conversation format (ChatML for
Qwen2-VL and LLaVA-OneVision, "User:/Assistant:" with ``<end_of_utterance>`` for Idefics3,
Vicuna's "USER:/ASSISTANT:" for LLaVA-1.5 on transformers' Llava). The tokenizer is a small
byte-level BPE trained on the built-in world's words, so no text is ever out of vocabulary.

    python -m genixer.models.hf.tiny qwen2_vl /tmp/tiny-qwen2-vl
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from genixer.models.tokenizer import byte_level_bpe
from genixer.tasks.templates import JUDGE_PROMPT, MC_ANSWER_HINT, SHORT_ANSWER_HINT
from genixer.world.scene import COLORS, POSITIONS, SHAPES

VOCAB_SIZE = 420

CHATML_VISION = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_IMAGE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
USER_ASSISTANT = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}<image>{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
VICUNA = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}"
    "ASSISTANT: {% endif %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% if message['role'] == 'user' %} "
    "{% else %}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
HEADS = {"num_attention_heads": 4, "num_key_value_heads": 2}


def corpus() -> list[str]:
    """The built-in world's words and the project's prompts: the tiny tokenizer's merges."""
    words = [*SHAPES, *COLORS, *POSITIONS, "Yes", "No", "yes", "no", "Question:", "Answer:"]
    prompts = [JUDGE_PROMPT, MC_ANSWER_HINT, SHORT_ANSWER_HINT]
    return [" ".join(words)] * 20 + prompts * 5


def tokenizer(specials: list[str], **roles: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE whose first ids are ``specials``; ``roles`` name eos, pad, image..."""
    backend = byte_level_bpe(corpus(), VOCAB_SIZE, specials)
    named = {k: v for k, v in roles.items() if k in ("eos_token", "pad_token", "bos_token")}
    extra = {k: v for k, v in roles.items() if k not in named}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        clean_up_tokenization_spaces=False,
        extra_special_tokens=extra,
        **named,
    )


def _ids(tok: PreTrainedTokenizerFast) -> dict:
    return {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id} | {
        "bos_token_id": tok.bos_token_id
    }


def qwen2_vl(version: str = "2") -> tuple:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLProcessor,
        Qwen2VLConfig,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    names = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *names],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        vision_bos_token="<|vision_start|>",
        vision_eos_token="<|vision_end|>",
    )
    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56, "patch_size": 14, "merge_size": 2}
    rope = {"rope_type": "default", "mrope_section": [4, 2, 2]}
    vision = {"depth": 2, "num_heads": 4, "patch_size": 14, "spatial_merge_size": 2}
    if version == "2":
        config_class, processor_class = Qwen2VLConfig, Qwen2VLProcessor
        vision |= {"embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}
    else:
        config_class, processor_class = Qwen2_5_VLConfig, Qwen2_5_VLProcessor
        vision |= {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64}
        vision |= {"window_size": 56, "fullatt_block_indexes": [1]}
    config = config_class(
        text_config=TEXT | HEADS | {"vocab_size": len(tok), "rope_parameters": rope} | _ids(tok),
        vision_config=vision,
        **{
            f"{k}_id": tok.convert_tokens_to_ids(v)
            for k, v in zip(
                ("vision_start_token", "vision_end_token", "image_token", "video_token"),
                names,
                strict=True,
            )
        },
    )
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=CHATML_VISION,
    )
    return config, processor


def qwen2_5_vl() -> tuple:
    return qwen2_vl("2.5")


SIGLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
SIGLIP |= {"num_attention_heads": 4}


def llava_onevision() -> tuple:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<image>",
        video_token="<video>",
    )
    side, patch = 28, 14
    pixels = {"size": {"height": side, "width": side}, "crop_size": {"height": side, "width": side}}
    pixels |= {"image_grid_pinpoints": [[side, side], [side, 2 * side], [2 * side, side]]}
    config = LlavaOnevisionConfig(
        text_config={"model_type": "qwen2", "vocab_size": len(tok)} | TEXT | HEADS | _ids(tok),
        vision_config={"model_type": "siglip_vision_model", "image_size": side}
        | SIGLIP
        | {"patch_size": patch},
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pixels["image_grid_pinpoints"],
        vision_feature_layer=-1,
    )
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**pixels),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(**pixels),
        num_image_tokens=(side // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHATML_IMAGE,
    )
    return config, processor


def idefics3() -> tuple:
    from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

    side, patch, scale = 28, 14, 2
    tok = tokenizer(
        ["<|begin_of_text|>", "<end_of_utterance>", "<|pad|>", "<image>"]
        + ["<fake_token_around_image>", "<global-img>"],
        bos_token="<|begin_of_text|>",
        eos_token="<end_of_utterance>",
        pad_token="<|pad|>",
        image_token="<image>",
    )
    config = Idefics3Config(
        text_config={"model_type": "llama", "vocab_size": len(tok)} | TEXT | HEADS | _ids(tok),
        vision_config=SIGLIP | {"image_size": side, "patch_size": patch},
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
    )
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": side},
        max_image_size={"longest_edge": side},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=(side // patch // scale) ** 2,
        chat_template=USER_ASSISTANT,
    )
    return config, processor


def llava() -> tuple:
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaProcessor

    side, patch = 28, 14
    tok = tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        image_token="<image>",
    )
    vision = {"model_type": "clip_vision_model", "image_size": side, "patch_size": patch}
    config = LlavaConfig(
        text_config={"model_type": "llama", "vocab_size": len(tok)} | TEXT | HEADS | _ids(tok),
        vision_config=vision | SIGLIP | {"projection_dim": 32},
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    crop = {"height": side, "width": side}
    image_processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size=crop)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by "default"
        chat_template=VICUNA,
    )
    return config, processor


FAMILIES: dict[str, Callable[[], tuple]] = {
    "qwen2_vl": qwen2_vl,
    "qwen2_5_vl": qwen2_5_vl,
    "llava_onevision": llava_onevision,
    "idefics3": idefics3,
    "llava": llava,
}


def build(family: str, folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint of ``family`` (weights seeded) to ``folder``."""
    from transformers import AutoModelForImageTextToText

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {sorted(FAMILIES)}")
    config, processor = FAMILIES[family]()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    folder = Path(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    processor.save_pretrained(str(folder))
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m genixer.models.hf.tiny", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("out", help="the folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build(args.family, args.out, args.seed))


if __name__ == "__main__":
    main()
