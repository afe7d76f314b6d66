"""The ``trainfix apply`` command a finding prints: one that runs as printed.

- A fix that repairs checkpoints (the finding's evidence lists ``checkpoint_paths``, as
  ``checkpoint-key-mismatch`` does) names the checkpoint to pass (``apply`` on a run dir edits
  configs, not checkpoints); with several, the first, and how many more take the same command.
- A config fix on a run whose training config ``apply RUN_DIR`` can find (the same choice as
  :func:`~trainfix.diagnostics.ingest.configs.pick_training_config`): ``trainfix apply RUN --fix ID``.
- A run diagnosed with ``--train-config FILE`` (the report's configs list it with its full path):
  the command passes the same file.
- No config in the run dir, or several with no way to tell which: the command carries
  ``--train-config`` with the file to pass (the candidate, or a placeholder for the config the
  user's script reads) and says why.

Paths are shell-quoted.  Pure: reads no file (it works from the report's recorded inputs).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from trainfix.diagnostics.finding import Finding

PLACEHOLDER = "path/to/your/train_config.yaml"


def fix_command(rr: Any, f: Finding) -> str:
    """The command for the finding's first fix on run report ``rr`` ('' when it lists none)."""
    if not f.fixes:
        return ""
    fix = f.fixes[0]
    ckpts = [str(c) for c in ((f.evidence or {}).get("checkpoint_paths") or [])]
    if ckpts or fix == "checkpoint-keys":
        if not ckpts:
            return f"trainfix apply CHECKPOINT --fix {fix}"
        more = len(ckpts) - 1
        return f"trainfix apply {shlex.quote(ckpts[0])} --fix {fix}" + (
            f"  (then the same for each of the other {more} checkpoint{'s' if more != 1 else ''})" if more else "")
    from trainfix.diagnostics.ingest.configs import pick_training_config, training_config_candidates

    path = Path(str(rr.path))
    run_dir = path if not path.suffix or path.is_dir() else path.parent
    configs = [Path(c) for c in ((rr.inputs or {}).get("configs") or [])]
    # a config outside the run dir (recorded with its full path) came from diagnose --train-config
    outside = [c for c in configs if c.is_absolute() or ".." in c.parts]
    if outside:
        return f"trainfix apply {shlex.quote(str(run_dir))} --train-config {shlex.quote(str(outside[-1]))} --fix {fix}"
    cands = training_config_candidates(configs)
    if run_dir == path and pick_training_config(Path("."), configs) is not None:
        return f"trainfix apply {shlex.quote(str(run_dir))} --fix {fix}"
    base = f"trainfix apply {shlex.quote(str(run_dir))} --train-config"
    if cands:
        return f"{base} {shlex.quote(str(run_dir / cands[0]))} --fix {fix}  ({len(cands)} configs here: pass the one the run used)"
    return f"{base} {PLACEHOLDER} --fix {fix}  (no config in the run dir: pass the file your training script reads)"
