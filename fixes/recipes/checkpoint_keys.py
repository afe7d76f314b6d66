"""Rewrite a checkpoint with clean parameter names (an artifact repair, not a config patch).

What it changes
---------------
Writes a NEW checkpoint next to the input (``<stem>.fixed<suffix>``, or the ``-o`` path) whose
weights carry the names a plain model expects: the ``module.`` (DataParallel/DDP), ``_orig_mod.``
(``torch.compile``) and Lightning ``model.`` wrappers are stripped.  Everything else in the
container stays where it was (optimizer state, epoch, EMA copy, which is cleaned the same way), and
the file format is kept (torch zip or safetensors).  The input file is never modified.  Given a
model (``--model CONFIG`` or ``--model module:factory``), the names are matched to the model's own
keys and the result is proven to load with ``strict=True`` before anything is written.

When to use
-----------
``checkpoint-key-mismatch`` fired: the checkpoint's keys start with a wrapper prefix, or a model
built from the run's config would be filled less than fully by it.  Also for any checkpoint that a
``load_state_dict(strict=False)`` silently loads nothing from (Grad-CAM all black, accuracy at chance
after "loading" the best model).

Why
---
``load_state_dict`` does not strip wrapper prefixes; with ``strict=False`` every key is then
"unexpected", nothing is loaded, and no error is raised.  Saving the unwrapped module
(``model.module`` / ``model._orig_mod``) avoids it for future runs; this repair fixes the files you
already have, and the strict-load proof makes the repair checkable.

Example diff
------------
::

    - module._orig_mod.features.0.weight   [16, 1, 3, 3]
    + features.0.weight                     [16, 1, 3, 3]
    - module._orig_mod.classifier.bias     [10]
    + classifier.bias                       [10]
      (412 of 412 keys renamed; optimizer_state_dict, epoch unchanged)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainfix.errors import CheckpointError, FixError
from trainfix.fixes.base import Recipe


@dataclass
class RepairResult:
    """What :meth:`CheckpointKeys.repair` wrote."""

    out_path: Path
    renamed: int
    prefixes: list[str]
    verified_strict: bool | None  # None: no model given, nothing to prove against
    n_keys: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (old, new), first few

    def to_dict(self) -> dict[str, Any]:
        return {"out_path": str(self.out_path), "renamed": self.renamed, "prefixes": self.prefixes,
                "verified_strict": self.verified_strict, "n_keys": self.n_keys,
                "examples": [list(e) for e in self.examples]}


def _set_at(container: Any, at: str, value: dict) -> Any:
    """A shallow copy of ``container`` with the mapping at dotted path ``at`` replaced."""
    if not at:
        return value
    head, _, rest = at.partition(".")
    new = dict(container)
    new[head] = _set_at(container[head], rest, value)
    return new


def _atomic_write(out: Path, write) -> None:
    from trainfix.outputs import write_with

    write_with(out, write, parents=True)


class CheckpointKeys(Recipe):
    __doc__ = __doc__

    id = "checkpoint-keys"
    resolves = ("checkpoint-key-mismatch",)
    kind = "artifact"
    knobs = ()
    warm_start = False

    def plan(self, config: Any, finding: Any = None) -> None:
        """Artifact recipes do not patch configs: always None (repair the file with :meth:`repair`)."""
        return self.skip("checkpoint-keys repairs a checkpoint file, not a config: "
                         "run 'trainfix apply CKPT --fix checkpoint-keys [--model ...]'")

    @staticmethod
    def default_out(path: Path) -> Path:
        return path.with_name(f"{path.stem}.fixed{path.suffix}")

    def repair(self, path: Path, out: Path | None = None, model: Any = None) -> RepairResult:
        """Write a repaired copy of the checkpoint at ``path`` (see module docstring).

        Raises :class:`FixError` when there is nothing to rename or ``out`` is the input, and
        :class:`CheckpointError` when the file cannot be read safely or, given a model, the
        repaired weights still do not load strictly (nothing is written then).
        """
        from trainfix import weights as ck

        path = Path(path)
        out = Path(out) if out is not None else self.default_out(path)
        if out.exists() and out.resolve() == path.resolve():
            raise FixError("refusing to overwrite the input checkpoint",
                           "choose another output path with -o; the input is never modified")
        loaded = ck.load_checkpoint(path)
        located = ck.locate_state_dict(loaded.obj)
        expected = list(model.state_dict().keys()) if model is not None else None
        plan = ck.plan_renames(located.state_dict.keys(), expected)
        prefixes = [p for p in ck.wrapper_prefixes(located.state_dict) if p]
        clean = {plan.get(k, k): v for k, v in located.state_dict.items()}

        verified: bool | None = None
        if model is not None:
            report = ck.compare_to_model(clean, model)
            if not report.loads_strict:
                raise CheckpointError(
                    f"after renaming, {path.name} still does not fit the model: "
                    f"{len(report.missing)} missing, {len(report.unexpected)} unexpected, "
                    f"{len(report.shape_mismatched)} shape-mismatched keys; nothing written",
                    "check that --model builds the architecture this checkpoint was saved from",
                    details=[f"missing: {k}" for k in report.missing[:10]]
                    + [f"unexpected: {k}" for k in report.unexpected[:10]]
                    + [f"shape mismatch: {k} {list(a)} vs {list(b)}" for k, a, b in report.shape_mismatched[:10]],
                )
            copy.deepcopy(model).load_state_dict(clean, strict=True)
            verified = True
        if not plan:
            raise FixError(
                f"{path.name} has clean keys already: nothing to rename"
                + (" (it loads strictly into the model)" if verified else ""),
                "no repair needed; if loading still fails, run 'trainfix inspect CKPT --model ...'",
            )

        container: Any = _set_at(loaded.obj, located.at, clean)
        for at, other in located.others.items():  # EMA copies and the like: same cleaning
            oplan = ck.plan_renames(other.keys(), expected)
            if oplan:
                container = _set_at(container, at, {oplan.get(k, k): v for k, v in other.items()})

        if loaded.format == "safetensors":
            from safetensors.torch import save_file

            tensors = {k: v.contiguous() for k, v in container.items()}
            _atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=loaded.metadata or None))
        else:
            import torch

            _atomic_write(out, lambda tmp: torch.save(container, tmp))
        examples = list(plan.items())[:5]
        return RepairResult(out, len(plan), prefixes, verified, len(clean), examples)

