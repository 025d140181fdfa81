"""Training: our Lightning training step (``genixer.training.fit``) against a plain PyTorch
loop on the same model, the same batches and the same optimizer and schedule: the generator
(Genixer_L, ``conf/generator/llava.yaml``) on its own instruction pairs with ``gen_train``'s
settings.

Steps/s is measured over the training loop itself on both sides: ours is the rate
``fit`` reports (its progress callback counts from Lightning's ``on_train_start``); the
plain loop's clock starts where its optimizer is ready. The fixed cost of building a
Lightning ``Trainer`` per ``fit`` call is reported beside it (it does not grow with steps).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from functools import partial

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from benchmarks.env import BenchEnv
from benchmarks.harness import Row
from genixer.core.build import to_plain
from genixer.pipeline.stages import collect as C
from genixer.training.data import EncodedDataset
from genixer.training.fit import fit
from genixer.training.roles import trainable_names


def plain_loop(model, dataset, collate, train_cfg: dict, seed: int) -> float:
    """The loop a user writes by hand; returns steps/s over its ``steps`` steps."""
    torch.manual_seed(seed)
    trained = trainable_names(model, train_cfg.get("trainable", "all"))
    for name, p in model.named_parameters():
        p.requires_grad_(name in trained)
    model.freeze_unused_parameters()
    steps = int(train_cfg["steps"])
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=train_cfg["lr"],
        weight_decay=train_cfg.get("weight_decay", 0.0),
        betas=(0.9, 0.98),
    )
    warmup = max(1, int(steps * train_cfg.get("warmup_ratio", 0.03)))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    loader = DataLoader(
        dataset,
        batch_size=int(train_cfg["batch_size"]),
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=partial(collate, padding_side="right"),
        drop_last=len(dataset) > int(train_cfg["batch_size"]),
    )
    model.train()
    start = time.perf_counter()
    done = 0
    while done < steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
    return steps / (time.perf_counter() - start)


def training_row(env: BenchEnv, steps: int, reps: int) -> Row:
    """``fit`` vs the plain loop, ``steps`` optimizer steps per repetition, interleaved."""
    logging.getLogger("genixer.train").setLevel(logging.WARNING)
    model, processor = env.generator()
    # The generator's own training data (instruction -> serialized sample), train_generator's
    # settings: the step the pipeline repeats most.
    c = env.cfg.generator.collection
    pairs, _ = C.generator_pairs(
        env.splits["collection"], list(c.tasks), dict(c.share), dict(c.tau), env.seed
    )
    by_id = {img.id: img for img in env.splits["collection"]}
    examples = [(by_id[p["image_id"]], [(p["instruction"], p["target"])]) for p in pairs]
    dataset = EncodedDataset(examples, processor.encode, env.root)
    train_cfg = dict(to_plain(env.cfg.generator.gen_train), steps=int(steps))
    trainer_cfg = OmegaConf.merge(env.cfg.trainer, {"enable_progress_bar": False})

    def ours() -> tuple[float, float]:
        start = time.perf_counter()
        info = fit(
            model,
            dataset,
            processor.collate,
            train=train_cfg,
            trainer_cfg=trainer_cfg,
            seed=env.seed,
            log_dir=env.scratch("fit"),
        )
        wall = time.perf_counter() - start
        return info["steps_per_s"], wall - info["steps"] / info["steps_per_s"]

    def plain() -> float:
        return plain_loop(model, dataset, processor.collate, train_cfg, env.seed)

    ours()  # warm-up
    plain()
    rates_ours, rates_plain, overheads = [], [], []
    for _ in range(reps):
        rate, overhead = ours()
        rates_ours.append(rate)
        overheads.append(overhead)
        rates_plain.append(plain())
    return Row(
        "training: Lightning fit step vs plain PyTorch loop",
        statistics.median(rates_ours),
        statistics.median(rates_plain),
        0.9,
        "steps/s",
        note=(
            f"{steps} steps of batch {train_cfg['batch_size']} per repetition, AdamW + warmup/"
            f"cosine, trainable={train_cfg.get('trainable', 'all')}; Trainer set-up "
            f"~{statistics.median(overheads):.2f} s per fit call, not counted"
        ),
        extra={"steps_per_s_ours": rates_ours, "steps_per_s_plain": rates_plain},
    )
