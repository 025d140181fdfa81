"""Vision pretraining on the built-in world: the role CLIP's web-scale pretraining plays.

LLaVA-1.5 and Shikra start from a pretrained CLIP tower (frozen in LLaVA-1.5). A tiny tower
trained from scratch on CPU has no such start, and learning shapes and positions through the
language model's loss alone takes most of the time budget. So the world's vision tower is
first trained to name what sits under each patch (shape and colour, or nothing), from the
labeled collection split, and then loaded (frozen) into every LLaVA-architecture model: the
generator and both downstream arms alike.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genixer.world.scene import COLORS, SHAPES, Scene

NUM_CLASSES = 1 + len(SHAPES) * len(COLORS)  # 0 = no object under the patch
TOWER_FILE = "vision_tower.safetensors"


def patch_labels(scene: Scene, image_size: int, patch_size: int) -> torch.Tensor:
    """Class of the object whose grid cell holds each patch's centre (row-major)."""
    g = image_size // patch_size
    labels = torch.zeros(g * g, dtype=torch.long)
    cell_px = image_size / scene.grid
    for p in range(g * g):
        r, c = divmod(p, g)
        cy, cx = (r + 0.5) * patch_size, (c + 0.5) * patch_size
        obj = scene.at(int(cy // cell_px) * scene.grid + int(cx // cell_px))
        if obj is not None:
            labels[p] = 1 + SHAPES.index(obj.shape) * len(COLORS) + COLORS.index(obj.color)
    return labels


class PatchAttributeModule(L.LightningModule):
    """A CLIP vision tower plus a linear head reading the feature layer the VLM uses."""

    def __init__(self, tower: nn.Module, feature_layer: int, lr: float) -> None:
        super().__init__()
        self.tower = tower
        self.feature_layer = feature_layer
        self.head = nn.Linear(tower.config.hidden_size, NUM_CLASSES)
        # Naming each patch's own grid position makes the features carry it linearly, so
        # the language model can read "where" from a token instead of inferring it.
        n_patches = (tower.config.image_size // tower.config.patch_size) ** 2
        self.position_head = nn.Linear(tower.config.hidden_size, n_patches)
        self.lr = lr

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tower(pixel_values=pixel_values, output_hidden_states=True)
        feats = out.hidden_states[self.feature_layer][:, 1:]  # drop CLS, as "default" does
        return self.head(feats), self.position_head(feats)

    def training_step(self, batch, batch_idx):
        pixels, labels = batch
        logits, where = self(pixels)
        positions = torch.arange(where.shape[1], device=where.device).expand(where.shape[0], -1)
        ce = nn.functional.cross_entropy
        loss = ce(logits.reshape(-1, NUM_CLASSES), labels.reshape(-1)) + ce(
            where.reshape(-1, where.shape[-1]), positions.reshape(-1)
        )
        acc = (logits.argmax(-1) == labels).float().mean()
        self.log_dict({"train/loss": loss, "train/patch_acc": acc}, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr)


def save_tower(tower: nn.Module, folder: Path) -> Path:
    path = Path(folder) / TOWER_FILE
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(path))
    return path


def load_tower(model, folder: Path) -> None:
    """Load pretrained tower weights into a VLM's vision tower (strict: same spec)."""
    state = load_file(str(Path(folder) / TOWER_FILE))
    model.model.vision_tower.load_state_dict(state, strict=True)


def pretrain_tower(
    tower: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    feature_layer: int,
    train_cfg,
    trainer: L.Trainer,
    seed: int,
) -> dict:
    """Train ``tower`` to name each patch's object (``labels`` from :func:`patch_labels`) for
    ``train_cfg.steps`` steps of ``trainer`` (built with that ``max_steps``)."""
    module = PatchAttributeModule(tower, feature_layer, train_cfg.lr)
    loader = DataLoader(
        TensorDataset(pixels, labels),
        batch_size=train_cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    trainer.fit(module, loader)
    acc = trainer.callback_metrics.get("train/patch_acc")
    return {
        "steps": int(trainer.global_step),
        "images": len(pixels),
        "patch_accuracy": round(float(acc), 4) if acc is not None else None,
    }
