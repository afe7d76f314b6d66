"""Checkpoints: atomic, clean-keyed, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (so the safe loader reads
it): ``model`` (state dict of the unwrapped, uncompiled module: never ``module.`` or ``_orig_mod.``
keys, and passed through each callback's ``clean_state_dict`` so pruning re-parametrisations never
leak), ``optimizer``, ``scaler``, ``loss`` (learnable loss parameters), ``ema``, ``callbacks``,
``rng`` (python, numpy, torch, cuda states converted to tensors/lists), ``progress`` (stage, epoch,
step, batches done in the epoch, running epoch sums, best metric, log lines written) and ``config``.
A JSON file beside each (``last.json`` for ``last.pt``) holds epoch, step, metrics and the config
hash, readable without unpickling anything.

Files in ``<run>/checkpoints/``: ``last.pt`` (refreshed at every save, and mid-epoch every
``checkpoint.every_n_steps`` optimizer steps when set, which is what ``--resume`` continues from),
``epoch_XXX.pt`` every ``every_n_epochs`` epochs (the newest ``keep_last`` kept), ``best.pt`` when
``best_metric`` improves, and with stages ``stage-<name>-{last,best}.pt`` for ``init_from``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from trainfix.errors import CheckpointError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def clean_keys(state: dict) -> dict:
    """Strip DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes, however nested."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
            key = key.replace("._orig_mod.", ".")
        out[key] = value
    return out


def model_state(model: torch.nn.Module, cleaners: Iterable[Callable[[dict], dict]] = ()) -> dict:
    """The state dict to save: unwrapped, with clean keys, passed through each cleaner."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP
        model = model.module
    model = getattr(model, "_orig_mod", model)  # torch.compile
    state = clean_keys(model.state_dict())
    for clean in cleaners:
        state = clean(state)
    return {k: v.detach() if torch.is_tensor(v) else v for k, v in state.items()}


# --- RNG states as safe-loadable values -----------------------------------------------------------
def rng_state() -> dict:
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved.

    A resumed run loads its checkpoint with ``map_location`` set to the training device, which puts
    these tensors on the GPU too; the generators take their state only as CPU byte tensors ("RNG
    state must be a torch.ByteTensor"), so each is brought back to the CPU first.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].cpu().numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --- files ---------------------------------------------------------------------------------------
def _atomic(path: Path, write: Callable[[str], None]) -> None:
    from trainfix.outputs import write_with

    write_with(path, write, parents=True)


def meta_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save(path: str | os.PathLike, state: dict, meta: dict) -> None:
    """Write ``state`` to ``path`` and ``meta`` to the JSON beside it, each atomically."""
    path = Path(path)
    _atomic(path, lambda tmp: torch.save(state, tmp))
    _atomic(meta_path(path), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, default=float) + "\n"))


def _link_or_copy(src: Path, tmp: str) -> None:
    # A hard link shares the bytes already written (saving rewrites last.pt through a new file
    # and os.replace, so the linked copy never changes); a plain copy where links are unsupported.
    try:
        os.unlink(tmp)
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)


def copy(src: Path, dst: Path) -> None:
    """Atomically copy a checkpoint and its meta file."""
    _atomic(dst, lambda tmp: _link_or_copy(src, tmp))
    if meta_path(src).exists():
        _atomic(meta_path(dst), lambda tmp: shutil.copyfile(meta_path(src), tmp))


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with the safe unpickler; CheckpointError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "train first, or point at an existing .pt file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        import pickle

        why = ("it holds objects that need arbitrary unpickling" if isinstance(exc, pickle.UnpicklingError)
               else f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        raise CheckpointError(
            f"cannot load {path} safely: {why}",
            "trainfix loads checkpoints with weights_only=True; a file that needs arbitrary unpickling is refused",
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a trainfix training checkpoint (no 'model' entry)", "use a last.pt/best.pt written by trainfix train")
    return state


def load_weights(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Model weights from a trainfix checkpoint (its ``model`` entry) or a plain state-dict file,
    with wrapper prefixes stripped: what ``init_from`` / ``--init-from`` start a model from."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "point at an existing .pt file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:
        state = None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(
            f"{path}: no model weights readable with weights_only=True",
            "use a trainfix checkpoint or a file saved with torch.save(model.state_dict(), path)",
        )
    return clean_keys(state)


class CheckpointManager:
    """Decides which files a save writes: last, epoch_XXX (last k), best, stage copies."""

    def __init__(self, directory: str | os.PathLike, cfg: Any, enabled: bool = True):
        self.dir = Path(directory)
        self.cfg = cfg  # CheckpointConfig
        self.enabled = enabled
        self.best: float | None = None

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"

    def improved(self, value: float | None) -> bool:
        if value is None or value != value:  # missing or NaN
            return False
        if self.best is None:
            return True
        return value > self.best if self.cfg.best_mode == "max" else value < self.best

    def save(self, state: dict, meta: dict, *, epoch_end: bool, epoch: int, metric: float | None = None) -> list[Path]:
        """Save ``state`` as last.pt, and as epoch/best files when due. Returns the paths written."""
        if not self.enabled:
            return []
        meta = {**meta, "saved_at": time.time()}
        is_best = epoch_end and self.improved(metric)
        if is_best:
            self.best = float(metric)
            state["progress"]["best"] = self.best
        save(self.last, state, {**meta, "kind": "last"})
        written = [self.last]
        if epoch_end and (epoch + 1) % self.cfg.every_n_epochs == 0:
            dst = self.dir / f"epoch_{epoch:03d}.pt"
            copy(self.last, dst)
            written.append(dst)
            self._prune()
        if is_best:
            best = self.dir / "best.pt"
            _atomic(best, lambda tmp: _link_or_copy(self.last, tmp))
            best_meta = {**meta, "kind": "best", "best_metric": self.cfg.best_metric, "best_value": self.best}
            _atomic(meta_path(best), lambda tmp: Path(tmp).write_text(json.dumps(best_meta, indent=2, default=float) + "\n"))
            written.append(best)
        return written

    def _prune(self) -> None:
        epochs = sorted(self.dir.glob("epoch_*.pt"))
        for old in epochs[: max(0, len(epochs) - self.cfg.keep_last)]:
            old.unlink(missing_ok=True)
            meta_path(old).unlink(missing_ok=True)

    def stage_copy(self, stage: str) -> None:
        """Keep this stage's last/best under stage-specific names (what ``init_from`` loads)."""
        if not self.enabled:
            return
        for kind in ("last", "best"):
            src = self.dir / f"{kind}.pt"
            if src.exists():
                copy(src, self.dir / f"stage-{stage}-{kind}.pt")
