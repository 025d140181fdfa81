"""A seeded per-record sampler that runs on the model's device (``generate.sampler=device``).

:class:`~genixer.models.generation.SeededSampler` draws from one CPU ``torch.Generator`` per
row and moves every step's logits to the CPU; at batch 64 on a GPU that costs a third of
the generation speed. This sampler keeps the same contract (a row's token depends only on
its logits, its seed and the step) without leaving the device: its random numbers come from
a counter-based stream, a SplitMix64 hash of (record seed, step, token id) computed with
int64 tensor ops, so there is no generator state and nothing is drawn per row in Python.

Sampling is Gumbel-max: the token with the largest ``log p + G`` wins, where ``G`` is a
Gumbel draw made from token ``j``'s uniform. That samples exactly from ``p``, and since each
token has its own number no sort is needed unless top-p is set. Top-p's cut is computed in
integer fixed point, so its cumulative sums are exact whatever the kernel's summation order.

It draws other tokens than the CPU sampler for the same seed: it is a separate option, part
of the generate stage's key when chosen (see ``generation_key``).
"""

from __future__ import annotations

import torch

from genixer.models.sampling import SeededProcessor

_MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
# Probabilities become integers of this many bits for the top-p cut (exact integer sums;
# a vocabulary of 2**20 tokens still sums far below 2**63).
FIXED_POINT_BITS = 40


def _int64(value: int) -> int:
    """An unsigned 64-bit constant as the signed int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    # torch's >> on int64 is arithmetic (copies the sign bit); masking the top bits off
    # makes it the logical shift SplitMix64 is defined with.
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output for state ``z`` (int64 tensor, bits read as unsigned): add the
    golden gamma, then mix. int64 products wrap modulo 2**64, as the algorithm needs."""
    z = z + _int64(GOLDEN_GAMMA)
    z = (z ^ _shift_right(z, 30)) * _int64(MIX1)
    z = (z ^ _shift_right(z, 27)) * _int64(MIX2)
    return z ^ _shift_right(z, 31)


def counter_uniforms(seeds: torch.Tensor, step: int, n: int) -> torch.Tensor:
    """Uniform numbers in (0, 1), float64, shape ``(rows, n)``: row ``i``'s number for token
    ``j`` at ``step`` is a hash of ``(seeds[i], step, j)`` alone, computed on ``seeds``'s
    device; no state, so a row's stream ignores the other rows and the batch size."""
    key = splitmix64(splitmix64(seeds.long()) + int(step))
    tokens = torch.arange(n, device=seeds.device, dtype=torch.long)
    bits = splitmix64(key.unsqueeze(1) + tokens.unsqueeze(0))
    # The top 53 bits, centred in their interval: never exactly 0 or 1 (log(-log u) finite).
    return (_shift_right(bits, 11).double() + 0.5) * 2.0**-53


def nucleus_mask(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which tokens top-p keeps: the shortest most-likely head whose mass reaches ``top_p``
    (ties ordered by token id, as the CPU sampler). Probabilities are summed as integers,
    so the cut is the same whatever the batch and the device's summation order."""
    q = torch.round(logp.exp() * 2.0**FIXED_POINT_BITS).long()
    q_sorted, order = torch.sort(q, dim=-1, descending=True, stable=True)
    cum = torch.cumsum(q_sorted, dim=-1)
    before = cum - q_sorted  # the mass of the tokens ranked above each one
    keep_sorted = before.double() < top_p * cum[:, -1:].double()
    return torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)


class DeviceSampler(SeededProcessor):
    """Sample each row from its counter-based stream on the scores' device; return a
    one-hot score that greedy decoding follows (as :class:`SeededSampler` does).

    Args as :class:`SeededSampler`. Log-probabilities are rounded to ``decimals`` before
    sampling, so the tiny float differences between batch shapes almost never change a
    draw; rows at temperature 0 take the argmax of the raw logits. The step counts the
    calls (one per generated token), so a sampler serves one ``generate`` call.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.step = 0  # the calls so far: one per generated token

    def _temperatures(self, input_ids: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Each row's temperature for this step (float64, on ``device``)."""
        rows = len(self.seeds)
        answer = torch.full((rows,), self.temperature, dtype=torch.float64, device=device)
        if self.phases is None:
            return answer
        if self.prompt_len is None:  # the first call sees the (left-padded) prompt alone
            self.prompt_len = input_ids.shape[1]
        starts = self.phases.starts(input_ids, self.prompt_len)
        return torch.where(starts.to(device), self.phases.question_temperature, answer)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.check_rows(scores)
        device = scores.device
        temps = self._temperatures(input_ids, device)
        logits = scores.detach().double()
        logp = torch.log_softmax(logits / temps.clamp(min=1e-6).unsqueeze(1), dim=-1)
        logp = torch.round(logp * self.scale) / self.scale
        seeds = torch.tensor(self.seeds, dtype=torch.long, device=device)
        u = counter_uniforms(seeds, self.step, scores.shape[1])
        self.step += 1
        perturbed = logp - torch.log(-torch.log(u))  # + Gumbel noise
        if self.top_p is not None:
            perturbed = perturbed.masked_fill(~nucleus_mask(logp, self.top_p), float("-inf"))
        # torch.where rather than an `if greedy.any()`: no device-to-host sync per step.
        chosen = torch.where(temps == 0, logits.argmax(-1), perturbed.argmax(-1))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen.unsqueeze(1), 0.0)
