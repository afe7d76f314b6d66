"""Exponential moving average of a model's weights (``training.ema_decay``), evaluated and saved
beside the live model."""

from __future__ import annotations

import copy

import torch


class EMA:
    """Exponential moving average of the model's floating-point state (``decay`` per step)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.refresh(model, force=True)

    def refresh(self, model: torch.nn.Module, force: bool = False) -> None:
        """(Re)bind to ``model``'s tensors; a model whose state keys changed (pruning) is re-copied."""
        if force or list(self.module.state_dict()) != list(model.state_dict()):
            self.module = copy.deepcopy(model).eval()
            for p in self.module.parameters():
                p.requires_grad_(False)
        ema_sd, sd = self.module.state_dict(), model.state_dict()
        self.floats = [(ema_sd[k], sd[k]) for k in sd if sd[k].is_floating_point()]
        self.others = [(ema_sd[k], sd[k]) for k in sd if not sd[k].is_floating_point()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        if self.floats:
            torch._foreach_lerp_([e for e, _ in self.floats], [m for _, m in self.floats], 1.0 - self.decay)
        for e, m in self.others:
            e.copy_(m)

    def load_state_dict(self, state: dict, model: torch.nn.Module) -> None:
        if list(state) == list(self.module.state_dict()):
            self.module.load_state_dict(state)
            self.refresh(model)
