"""The device-side seeded sampler (``generate.sampler=device``): its hash is SplitMix64, a
row's draws depend only on (seed, step), it samples softmax(logits / T) with top-p and the
per-phase temperatures, and a record's tokens ignore its batch; the static-cache path
(``generate.compile``) gives the default path's tokens. All on the CPU, real tiny models."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import GenerationConfig, StaticCache

from genixer.models import build_tokenizer, build_vlm, processor_for
from genixer.models.device_sampler import DeviceSampler, counter_uniforms, splitmix64
from genixer.models.generation import Phases, _model_batch, _static_cache, generate
from genixer.pipeline.stages import generate as G
from genixer.sources.shapes import ShapesWorld
from tests.conftest import TINY_VLM_SPEC

MASK64 = (1 << 64) - 1
CORPUS = [
    "Question: How many red circles are there? Answer: 2.",
    "Question: Is there a blue square? Answer: yes.",
    "Please provide a clear and direct question and answer after examining the image.",
] * 10


def splitmix64_reference(state: int) -> int:
    """SplitMix64 on Python's unbounded ints (Vigna's reference, one step)."""
    z = (state + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_splitmix64_on_int64_tensors_is_the_reference_algorithm():
    # Negative states and ones with the top bit set catch an arithmetic (sign-copying) shift.
    states = [0, 1, 2**31 - 1, -1, -(2**63), 2**62 + 12345, -987654321]
    out = splitmix64(torch.tensor(states, dtype=torch.long)).tolist()
    assert [v & MASK64 for v in out] == [splitmix64_reference(s & MASK64) for s in states]
    assert splitmix64_reference(0) == 0xE220A8397B1DCDAF  # SplitMix64's first output, seed 0


def test_a_rows_numbers_depend_only_on_its_seed_and_the_step():
    seeds = torch.tensor([5, 6, 2**31 - 1])
    u = counter_uniforms(seeds, step=3, n=1000)
    for i in range(3):
        assert torch.equal(u[i : i + 1], counter_uniforms(seeds[i : i + 1], 3, 1000))
    assert not torch.equal(u, counter_uniforms(seeds, 4, 1000))  # another step
    assert not torch.equal(u[0], u[1])  # another seed
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(u.mean().item() - 0.5) < 0.02 and abs(u.var().item() - 1 / 12) < 0.005


def test_the_draw_at_a_step_ignores_the_logits_of_earlier_steps():
    torch.manual_seed(0)
    first_a, first_b, later = torch.randn(1, 40), torch.randn(1, 40), torch.randn(1, 40)
    a, b = DeviceSampler([9], temperature=1.0), DeviceSampler([9], temperature=1.0)
    a(None, first_a), b(None, first_b)  # different histories
    assert torch.equal(a(None, later), b(None, later))


def draws(sampler: DeviceSampler, scores: torch.Tensor, steps: int) -> list[list[int]]:
    return [sampler(None, scores).argmax(-1).tolist() for _ in range(steps)]


def test_rows_ignore_their_neighbours_and_their_order():
    torch.manual_seed(1)
    scores = torch.randn(8, 60)
    seeds = [11, 22, 33, 44, 55, 66, 77, 88]
    batched = draws(DeviceSampler(seeds, temperature=1.0), scores, steps=5)
    for i, s in enumerate(seeds):
        alone = draws(DeviceSampler([s], temperature=1.0), scores[i : i + 1], steps=5)
        assert [step[0] for step in alone] == [step[i] for step in batched]
    perm = [3, 7, 0, 5, 1, 6, 2, 4]
    permuted = draws(DeviceSampler([seeds[j] for j in perm], 1.0), scores[perm], steps=5)
    assert [[step[perm.index(i)] for i in range(8)] for step in permuted] == batched
    assert len({t for step in batched for t in step}) > 5  # it really samples


def frequencies(tokens: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(tokens, minlength=n).double() / tokens.numel()


def test_draws_follow_softmax_of_logits_over_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    seeds = list(range(4000))
    for t in (0.7, 1.0, 2.0):
        tokens = DeviceSampler(seeds, temperature=t)(None, logits.expand(4000, 5)).argmax(-1)
        expected = torch.softmax(logits[0].double() / t, -1)
        # 4000 draws: a frequency's standard error is at most 0.008.
        assert (frequencies(tokens, 5) - expected).abs().max() < 0.03, t


def test_top_p_keeps_the_smallest_head_that_reaches_it():
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1, 0.0001]]))
    tokens = DeviceSampler(range(4000), 1.0, top_p=0.65)(None, logits.expand(4000, 5)).argmax(-1)
    freq = frequencies(tokens, 5)
    assert freq[2:].sum() == 0  # 0.4 + 0.3 reaches 0.65: the rest is cut
    assert abs(freq[0].item() - 0.4 / 0.7) < 0.03
    torch.manual_seed(3)
    scores = torch.randn(3, 50)
    tiny = DeviceSampler([5, 6, 7], temperature=1.0, top_p=1e-6)(None, scores).argmax(-1)
    assert torch.equal(tiny, scores.argmax(-1))  # a tiny nucleus keeps only the top token


def test_phases_on_the_device_match_the_row_by_row_rule():
    phases = Phases(1.0, question_markers=[[7, 1], [8, 1, 2]])
    prompt_len = 3
    rows = [[0, 7, 1], [3, 7, 1], [7, 1, 3], [8, 1, 2], [1, 2, 2], [0, 8, 1]]
    ids = torch.cat([torch.zeros(len(rows), prompt_len, dtype=torch.long), torch.tensor(rows)], 1)
    expected = [phases.at_question_start(r) for r in rows]
    assert expected == [True, True, False, True, False, False]
    assert phases.starts(ids, prompt_len).tolist() == expected
    # A marker longer than what was generated does not reach back into the prompt.
    assert phases.starts(torch.tensor([[0, 7, 1]]), 2).tolist() == [False]


def test_only_question_starts_are_sampled_at_their_temperature():
    torch.manual_seed(4)
    scores = torch.randn(2, 50)
    phases = Phases(1.0, question_markers=[[7, 1]])
    prompt = torch.zeros(2, 3, dtype=torch.long)
    sampler = DeviceSampler([5, 6], temperature=0.0, phases=phases)
    assert torch.equal(sampler(prompt, scores).argmax(-1), scores.argmax(-1))  # all greedy
    ids = torch.cat([prompt, torch.tensor([[7, 1, 3, 4], [3, 4, 7, 1]])], 1)
    chosen = sampler(ids, scores).argmax(-1)
    assert chosen[0] == scores[0].argmax()  # inside a question: greedy
    free = DeviceSampler([5, 6], temperature=1.0)
    free(None, scores)  # step 0 as above
    assert chosen[1] == free(None, scores).argmax(-1)[1]  # a question's first word: sampled


def test_bad_arguments_are_refused():
    for kwargs, match in (
        ({"temperature": -1.0}, ">= 0"),
        ({"temperature": 0.0}, "temperature > 0"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
    ):
        with pytest.raises(ValueError, match=match):
            DeviceSampler([1], **kwargs)
    with pytest.raises(ValueError, match="2 rows but 1 seeds"):
        DeviceSampler([1], 1.0)(None, torch.zeros(2, 5))


# ------------------------------------------------------------------ through the model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = build_tokenizer(CORPUS, vocab_size=300)
    torch.manual_seed(0)
    model = build_vlm(TINY_VLM_SPEC, tok).eval()
    return model, processor_for(model, tok)


def items(n: int) -> list:
    colors = ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"]
    prompts = ["Ask one question.", "Q", "Please provide a clear and direct question and answer."]
    return [
        (Image.new("RGB", (24 + 4 * i, 32), colors[i % 8]), [(prompts[i % 3], None)])
        for i in range(n)
    ]


def in_batches(tiny, batch: int, order: list[int], **kw) -> list[str]:
    model, proc = tiny
    its, seeds = items(8), [101 + 7 * i for i in range(8)]
    out: dict[int, str] = {}
    for s in range(0, 8, batch):
        chunk = order[s : s + batch]
        texts = generate(
            model, proc, [its[i] for i in chunk], [seeds[i] for i in chunk], max_new_tokens=10, **kw
        )
        out.update(zip(chunk, texts, strict=True))
    return [out[i] for i in range(8)]


def test_generated_text_ignores_batch_size_and_order(tiny):
    kw = {"temperature": 1.0, "sampler": "device"}
    reference = in_batches(tiny, 8, list(range(8)), **kw)
    assert len(set(reference)) > 4  # a random model sampled at 1.0 varies
    for batch in (1, 3):
        assert in_batches(tiny, batch, list(range(8)), **kw) == reference
    assert in_batches(tiny, 8, [5, 2, 7, 0, 3, 6, 1, 4], **kw) == reference
    assert in_batches(tiny, 8, list(range(8)), **kw) == reference  # a second call
    assert in_batches(tiny, 8, list(range(8)), temperature=1.0) != reference  # the cpu sampler


def test_the_static_cache_path_gives_the_default_paths_tokens(tiny):
    model, proc = tiny
    batch = _model_batch(model, proc, items(2))
    config = GenerationConfig(max_new_tokens=2, pad_token_id=proc.pad_id, **_static_cache(30))
    out = model.generate(**batch, generation_config=config, return_dict_in_generate=True)
    assert isinstance(out.cache, StaticCache) and out.cache.get_max_length() == 256  # bucketed
    for kw in (
        {"temperature": 0.0},
        {"temperature": 1.0},
        {"temperature": 1.0, "sampler": "device"},
    ):
        assert in_batches(tiny, 3, list(range(8)), compile=True, **kw) == in_batches(
            tiny, 3, list(range(8)), **kw
        ), kw


def test_generation_refuses_an_unknown_sampler(tiny):
    with pytest.raises(ValueError, match="sampler must be one of"):
        generate(*tiny, items(1), [1], max_new_tokens=2, sampler="gpu")


# ------------------------------------------------------------------ through the stage
def test_the_stage_keys_the_sampler_only_when_it_is_not_the_default():
    base = {"batch_size": 64, "backend": "hf", "temperature": 0.2, "question_temperature": None}
    assert G.generation_key(base | {"sampler": "cpu", "compile": True}) == {"temperature": 0.2}
    assert G.generation_key(base | {"sampler": "device", "compile": False}) == {
        "temperature": 0.2,
        "sampler": "device",
    }


def test_stage_records_are_the_same_bytes_at_batch_1_3_8(tiny, tmp_path):
    model, proc = tiny
    pool = ShapesWorld(seed=2, image_size=32, splits={"pool": 4}).materialize(tmp_path / "world")
    reqs = G.requests(pool["pool"], 2, "generic", "genixer_l", 0)
    decoding = {"temperature": 1.0, "max_new_tokens": 6, "top_p": 0.9, "sampler": "device"}
    outputs = []
    for batch in (1, 3, 8):
        folder = tmp_path / f"b{batch}"
        G.run_generation(
            model,
            proc,
            reqs,
            world=tmp_path / "world",
            folder=folder,
            decoding=decoding,
            batch_size=batch,
            shard_size=3,
        )
        outputs.append((folder / G.GENERATIONS).read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
