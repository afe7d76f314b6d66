"""The ``checkpoint-key-mismatch`` detector: wrapper prefixes in checkpoint keys, or keys that would
not fill the run's model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from trainfix.diagnostics import knobs
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

WRAPPER_NAMES = {
    "module.": "DataParallel/DistributedDataParallel",
    "_orig_mod.": "torch.compile",
    "model.": "Lightning module attribute",
}


def _wrapper_words(chain: str) -> str:
    parts = [seg + "." for seg in chain.strip(".").split(".") if seg]
    return " + ".join(WRAPPER_NAMES.get(p, p) for p in parts)


class CheckpointKeyMismatch(Detector):
    """Checkpoint keys carry a wrapper prefix, or would not fill the run's model.

    What it detects
    ---------------
    Checkpoints in the run whose parameter names start with a wrapper that a plain
    ``model.load_state_dict`` does not strip: ``module.`` (DataParallel / DistributedDataParallel),
    ``_orig_mod.`` (``torch.compile``, also inside names when a submodule was compiled), their
    combinations such as ``module._orig_mod.``, and ``model.`` in a Lightning checkpoint.  When the run
    holds a trainfix config, the model it builds is compared with each checkpoint: any missing,
    unexpected or shape-mismatched key, i.e. a ``strict=False`` load that fills less than the whole
    model, is reported too.  That model's layout comes from ``run.expected_model``, built by the
    command from trainfix's registered components only (a config naming a ``_component_`` is never
    imported); the detector builds nothing and reads no file.

    Why it matters
    --------------
    ``load_state_dict(strict=True)`` fails on such a file, and the common workaround,
    ``strict=False``, silently loads nothing: the model keeps its random init, evaluation drops to
    chance, and Grad-CAM or attention maps come out blank.  Seed 004's loader renamed keys into
    ``new_key`` and then stored ``key``; nothing complained.

    Evidence
    --------
    Per checkpoint: the wrapper chain, how many keys carry it out of how many ("412 of 412 keys start
    with 'module.'"), the container layout (where the weights live); with a model from the config, the
    missing / unexpected / shape-mismatched counts, the share of parameters a ``strict=False`` load
    would fill as saved, and the share after stripping the wrappers.  Checkpoints are read through
    ``run.checkpoints[i].summary`` (``weights_only`` loads); this detector reads no file itself.

    Fix
    ---
    ``checkpoint-keys``: ``trainfix apply CKPT --fix checkpoint-keys [--model CONFIG]`` writes a repaired
    copy with clean keys (and proves a strict load when a model is given).  In code, load with
    ``trainfix.trainers.robust_load.load_state_dict_robust(model, path)``, and save
    ``model.module.state_dict()`` / ``model._orig_mod.state_dict()`` instead of the wrapper's.

    False positives
    ---------------
    A model whose own first attribute is named ``module`` would look DataParallel-wrapped; such a file
    still loads into that model, so set ``min_prefix_share`` above 1 to silence the prefix check and
    rely on the config comparison.  ``model.`` alone is reported only for Lightning-style containers
    (a plain model may own a ``self.model``).  Without a trainfix config (or without torch) the
    comparison with the model is skipped and only prefixes are judged.

    Parameters
    ----------
    min_prefix_share : float, default 0.5
        Fire when at least this share of a checkpoint's keys start with ``module.`` / ``_orig_mod.``.
    compare_with_config_model : bool, default True
        Build the model from the run's trainfix config and compare keys and shapes.
    min_fill_share : float, default 1.0
        With a model: fire when a ``strict=False`` load would fill less than this share of its parameters.
    """

    name = "checkpoint-key-mismatch"
    severity = Severity.ERROR
    fixes = ("checkpoint-keys",)

    @dataclass
    class Params:
        min_prefix_share: float = 0.5
        compare_with_config_model: bool = True
        min_fill_share: float = 1.0

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        refs = list(run.checkpoints or [])
        if not refs:
            yield self.skip("no checkpoints in the run directory")
            return
        readable = []
        unreadable = []
        for ref in refs:
            summary = ref.summary
            if summary is None:
                unreadable.append(f"{Path(ref.path).name}: {ref.error or 'unreadable'}")
            else:
                readable.append((ref, summary))
        if not readable:
            yield self.skip("no checkpoint could be read safely: " + "; ".join(unreadable[:3]))
            return

        model = None
        model_note = None
        if params.compare_with_config_model and knobs.is_trainfix_config(run.config):
            model, model_note = getattr(run, "expected_model", (None, None))  # built by the command, registered components only

        # group files by the problem they share, so three copies of one bug make one finding
        groups: dict[tuple, list[tuple[Any, Any, dict]]] = {}
        for ref, s in readable:
            n = len(s.shapes)
            if not n:
                continue
            problem: dict[str, Any] = {}
            lead = s.prefix_share()
            if lead is not None:
                chain, count = lead
                unambiguous = "module." in chain or "_orig_mod." in chain
                lightning_model = chain == "model." and s.kind == "lightning" and count == n
                if (unambiguous and count / n >= params.min_prefix_share) or lightning_model:
                    problem.update(prefix=chain, keys_with_prefix=count)
            inner = s.prefixes.get("*._orig_mod.", 0)
            if inner:
                problem.update(inner_orig_mod_keys=inner)
            if model is not None:
                from trainfix.diagnostics.checkpoints import compare_to_model, strip_prefixes

                shapes = {k: tuple(v) for k, v in s.shapes.items()}
                rep = compare_to_model(shapes, model)
                if rep.fill_share < params.min_fill_share or rep.shape_mismatched:
                    fixed = compare_to_model(strip_prefixes(shapes, list(model.shapes)), model)
                    problem.update(missing=len(rep.missing), unexpected=len(rep.unexpected),
                                   shape_mismatched=len(rep.shape_mismatched),
                                   fill_share=round(rep.fill_share, 4),
                                   fill_share_after_strip=round(fixed.fill_share, 4),
                                   missing_examples=rep.missing[:5], unexpected_examples=rep.unexpected[:5],
                                   shape_examples=[[k, list(a), list(b)] for k, a, b in rep.shape_mismatched[:3]])
            if problem:
                key = (problem.get("prefix"), problem.get("keys_with_prefix"), n, problem.get("missing"),
                       problem.get("unexpected"), problem.get("inner_orig_mod_keys"))
                groups.setdefault(key, []).append((ref, s, problem))

        for members in groups.values():  # clean checkpoints: no group, nothing to report
            yield self._finding(members, model_note)

    def _finding(self, members: list[tuple[Any, Any, dict]], model_note: str | None) -> Finding:
        ref, s, problem = members[0]
        names = [Path(r.path).name for r, _, _ in members]
        n = len(s.shapes)
        where = names[0] if len(names) == 1 else f"{len(names)} checkpoints ({', '.join(names[:4])}" + (
            ", ...)" if len(names) > 4 else ")")
        parts = []
        if "prefix" in problem:
            chain = problem["prefix"]
            parts.append(f"{problem['keys_with_prefix']} of {n} keys start with '{chain}' "
                         f"({_wrapper_words(chain)} wrapper), which a plain model.load_state_dict does not strip")
        if "inner_orig_mod_keys" in problem:
            parts.append(f"{problem['inner_orig_mod_keys']} of {n} keys hold an inner '._orig_mod.' "
                         "(a torch.compile'd submodule was saved)")
        if "fill_share" in problem:
            parts.append(f"against the model built from the run's config: {problem['missing']} missing, "
                         f"{problem['unexpected']} unexpected, {problem['shape_mismatched']} shape-mismatched "
                         f"keys; a strict=False load fills {problem['fill_share']:.0%} of its parameters"
                         + (f" ({problem['fill_share_after_strip']:.0%} after stripping wrappers)"
                            if problem['fill_share_after_strip'] != problem['fill_share'] else ""))
        elif "prefix" in problem:
            parts.append("strict=True raises and strict=False silently loads nothing")
        message = f"{where}: " + "; ".join(parts)
        evidence: dict[str, Any] = {"checkpoints": names,
                                    "checkpoint_paths": [str(r.path) for r, _, _ in members], "n_keys": n, "state_dict_at": s.state_dict_at,
                                    "container": s.kind, **problem}
        if model_note:
            evidence["model_comparison"] = model_note
        confident = "prefix" in problem and ("module." in problem["prefix"] or "_orig_mod." in problem["prefix"])
        return self.finding(message, evidence=evidence,
                            confidence=0.95 if confident or "fill_share" in problem else 0.8)
