"""`trainfix apply`: patch a run's config with a fix (a new file and its diff), or repair a checkpoint.

``trainfix apply [RUN_DIR|CONFIG|CKPT] --fix ID [--fix ID ...] [--train-config FILE] [-o OUT] [--force]
[--dry-run] [--relaunch] [--resume-from CKPT] [--relaunch-cmd 'python train.py --config {config} --out {out}']
[--model REF]``

- No path: the current directory, so ``trainfix apply --fix sparsity-l1`` inside a run dir works.
- A run dir: its training config as ``diagnose`` finds it (``config.yaml``, Lightning's
  ``version_N/hparams.yaml``, ``training_args.json``...), or the file ``--train-config`` names: the
  config your own script reads, wherever it lives.  The run is diagnosed for the findings the fixes
  answer.
- Without ``--fix``: the run is diagnosed and the best fix per finding is listed, then applied.
- The patched config is a NEW file, written atomically; the input is never modified:
  ``<name>.fixed.<ext>`` next to a config outside the run, ``<run>.<name>.fixed.<ext>`` beside the
  run dir for a config inside it (an output never becomes an input of the run it came from), or
  ``-o``.  An existing output is not replaced without ``--force``; to add a fix to an already fixed
  config, apply to that file (the fixes stack: ``x.fixed.yaml`` -> ``x.fixed-2.yaml``, provenance
  of both kept).  ``--dry-run`` shows the diff and writes nothing.
- A checkpoint with ``--fix checkpoint-keys``: a repaired copy (see ``trainfix explain checkpoint-keys``).
- ``--relaunch`` trains the patched trainfix config into a new run dir; ``--relaunch-cmd`` runs
  your own command with ``{config}`` replaced by the patched file's path and ``{out}`` by a fresh
  run dir beside the old one (``<run>-fixed``).  Either ends with the comparison of the two runs
  (``trainfix compare``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from trainfix.cli.common import command, err, out
from trainfix.errors import FixError, InputError, TrainingError, UsageError

CHECKPOINT_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".pkl"}
TAIL_LINES = 20


@command
def apply_command(
    path: Annotated[Optional[Path], typer.Argument(help="Run dir, config file or checkpoint (default: the current directory).")] = None,
    fix: Annotated[Optional[list[str]], typer.Option("--fix", help="Fix id to apply (repeatable). Default: the fixes the run's diagnosis recommends.")] = None,
    train_config: Annotated[Optional[Path], typer.Option("--train-config", help="The training config your script reads (edited instead of the one found in the run dir).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write: a file, or a directory for <name>.fixed.<ext>.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and the diff; write nothing.")] = False,
    relaunch: Annotated[bool, typer.Option("--relaunch", help="Train the patched trainfix config into a new run dir.")] = False,
    resume_from: Annotated[Optional[Path], typer.Option("--resume-from", help="With --relaunch: warm-start from this checkpoint (when the fixes allow it).")] = None,
    relaunch_cmd: Annotated[Optional[str], typer.Option("--relaunch-cmd", help="Run your own training command: {config} becomes the patched file, {out} a new run dir.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="checkpoint-keys: a trainfix config or module:factory to prove the repaired keys load strictly.")] = None,
) -> None:
    """Apply fixes: write a patched copy of a config (with its diff) or repair a checkpoint."""
    target = Path(path) if path is not None else Path.cwd()
    if not target.exists():
        raise InputError(f"no such file or directory: {target}", "give a run directory, a config file or a checkpoint")
    fixes = list(fix or [])
    _check_options(fixes, relaunch, relaunch_cmd, resume_from)
    if target.is_file() and target.suffix.lower() in CHECKPOINT_SUFFIXES:
        if train_config is not None:
            raise UsageError("--train-config goes with a run directory, not a checkpoint",
                             f"trainfix apply {target} --fix checkpoint-keys")
        _repair_checkpoint(target, fixes, output, model, dry_run)
        return
    _check_train_config(target, train_config)
    run_dir = target if target.is_dir() else target.parent
    if "checkpoint-keys" in fixes:
        raise UsageError("'checkpoint-keys' repairs a checkpoint, not a config", checkpoint_hint(run_dir))

    from trainfix.fixes.foreign import default_output, find_config, load_document
    from trainfix.fixes.patch import patch_document
    from trainfix.fixes.recommend import plan_fixes

    config_path = train_config or (find_config(target) if target.is_dir() else target)
    doc = load_document(config_path)
    con = out()
    con.print(f"config: [bold]{escape(str(config_path))}[/] ({_flavor_text(doc.flavor)})")

    logs_here = has_logs(run_dir) and (target.is_dir() or is_one_run(run_dir))
    report = diagnose_quietly(run_dir, train_config) if logs_here else None
    findings = list(report.findings) if report is not None else []
    fixes = fixes or _recommended_fixes(con, doc, report, findings, run_dir)
    if not fixes:
        return
    patches, already = plan_fixes(doc.tree, _dedupe(fixes), findings, doc.provenance)
    for fix_id in already:
        con.print(f"[dim]{fix_id}: already applied to this config (its provenance lists it); nothing to change[/]")
    if relaunch:  # refuse before anything is written
        _check_relaunch(doc, patches, resume_from)
    the_run = run_dir if (target.is_dir() or logs_here) else None
    out_path = default_output(config_path, output, run_dir=the_run)
    _check_output(doc, out_path, the_run, logs_here, dry_run, force)
    result = patch_document(doc, patches, str(out_path))
    if not _show_result(con, result):
        return
    if dry_run:
        con.print("[yellow]dry run: nothing written[/]")
        return
    _write(doc, result, out_path)
    con.print(f"wrote [bold]{escape(str(out_path))}[/] (the input is unchanged)")
    before = run_dir if report is not None else None
    if relaunch:
        new_run = relaunch_trainfix(out_path, the_run, resume_from)
    elif relaunch_cmd:
        new_run = run_user_command(relaunch_cmd, out_path, relaunch_dir(the_run, out_path))
    else:
        return
    # the old run used the user's config as it was, the new one the patched copy
    finish_with_comparison(before, new_run, train_config, out_path if train_config is not None else None)


def _check_options(fixes: list[str], relaunch: bool, relaunch_cmd: Optional[str], resume_from: Optional[Path]) -> None:
    """Refuse a misspelled --fix and options that do not go together, before any file is read."""
    from trainfix.fixes.recommend import check_fix_ids

    check_fix_ids(fixes)  # a misspelled --fix fails here, before any file is read or diagnosed
    if relaunch and relaunch_cmd:
        raise UsageError("--relaunch and --relaunch-cmd are alternatives", "use --relaunch for trainfix configs, --relaunch-cmd for your own script")
    if resume_from is not None and not relaunch:
        raise UsageError("--resume-from needs --relaunch", "add --relaunch")
    if relaunch_cmd is not None and "{config}" not in relaunch_cmd:
        raise UsageError("--relaunch-cmd must contain {config} (where the patched config's path goes)",
                         "e.g. --relaunch-cmd 'python train.py --config {config} --out {out}'")


def _check_train_config(target: Path, train_config: Optional[Path]) -> None:
    """--train-config goes with a run directory and must name a file."""
    if train_config is None:
        return
    if not target.is_dir():
        raise UsageError(f"with --train-config, PATH is the run directory; {target} is a file",
                         f"trainfix apply RUN_DIR --train-config {train_config} --fix ID")
    if not train_config.is_file():
        raise InputError(f"--train-config {train_config}: no such file", "pass the YAML/JSON config your training script reads")


def _recommended_fixes(con, doc: Any, report: Any, findings: list, run_dir: Path) -> list[str]:
    """Without --fix: the best fix per finding that edits this config, listed as they are chosen
    (empty, said so, when none does)."""
    from trainfix.fixes.recommend import recommend

    if report is None:
        raise UsageError(f"no --fix given and no training logs to diagnose in {run_dir}",
                         "pass --fix ID (trainfix list fixes), or point at a run directory")
    recs = recommend(doc.tree, findings)
    show_recommendations(con, recs)
    fixes = [r.recipe_id for r in recs if r.recipe_id and not r.shared]
    if not fixes:
        con.print("nothing to apply: no finding has a fix that edits this config")
    return fixes


def _check_relaunch(doc: Any, patches: list, resume_from: Optional[Path]) -> None:
    """--relaunch trains trainfix configs only, and warm-starts only when every fix allows it."""
    if not doc.is_trainfix:
        raise UsageError("--relaunch trains trainfix configs; this is a foreign config",
                         "use --relaunch-cmd 'python train.py --config {config} --out {out}'")
    cold = [p.recipe_id for p in patches if not _recipe(p.recipe_id).warm_start]
    if resume_from is not None and cold:
        raise FixError(f"--resume-from is not safe with {', '.join(cold)}: the fix changes what the checkpoint holds",
                       "relaunch without --resume-from (a fresh run)")


def _check_output(doc: Any, out_path: Path, the_run: Optional[Path], logs_here: bool, dry_run: bool,
                  force: bool) -> None:
    """The output never lands inside the run it came from, nor over an earlier output without --force."""
    from trainfix.fixes.foreign import is_within

    if the_run is not None and logs_here and is_within(out_path, the_run):
        raise UsageError(f"{out_path} is inside the run directory {the_run}: its next diagnosis would read the "
                         "patched copy as the run's own config",
                         "write it elsewhere (without -o it goes beside the run directory)")
    if not dry_run and not force and (out_path.exists() or _sidecar_exists(doc, out_path)):
        raise UsageError(f"{out_path} already exists (an earlier output?); not overwritten",
                         f"pass --force to replace it, -o for another file, or stack the fixes on it: "
                         f"trainfix apply {shlex.quote(str(out_path))} --fix ID")


def _show_result(con, result: Any) -> bool:
    """Print each patch, then the diff or why nothing changed; whether anything changed."""
    for patch, applied in result.applied:
        show_patch(con, patch, applied)
    if not result.changed:
        if any(p.advice and not a.already_applied and not a.unchanged for p, a in result.applied):
            con.print("no key in this config expresses the fix: nothing written; follow the advice above")
        else:
            con.print("nothing changed: every fix is already in place; no file written")
        return False
    con.print()
    show_diff(con, result.diff)
    return True


def _sidecar_exists(doc: Any, out_path: Path) -> bool:
    from trainfix.fixes.foreign import sidecar_path

    return doc.fmt == "json" and not doc.is_trainfix and sidecar_path(out_path).exists()


def checkpoint_hint(run_dir: Path) -> str:
    """The command that repairs this run's checkpoint(s), naming the checkpoint (the first, and how
    many others there are), or the generic form when the directory holds none."""
    from trainfix.diagnostics.ingest.discover import scan

    ckpts = scan(run_dir).checkpoints if run_dir.is_dir() else []
    if not ckpts:
        return "run: trainfix apply path/to/checkpoint.pt --fix checkpoint-keys"
    first = shlex.quote(str(ckpts[0]))
    more = f" (and likewise for each of the other {len(ckpts) - 1}: " + \
        ", ".join(c.name for c in ckpts[1:5]) + ("..." if len(ckpts) > 5 else "") + ")" if len(ckpts) > 1 else ""
    return f"run: trainfix apply {first} --fix checkpoint-keys{more}"


def _write(doc: Any, result: Any, out_path: Path) -> None:
    from trainfix.fixes.foreign import write_document

    write_document(doc, result.text, out_path, result.provenance)


def _recipe(recipe_id: str):
    from trainfix.fixes.recommend import make_recipe

    return make_recipe(recipe_id)


def _dedupe(ids: list[str]) -> list[str]:
    seen: list[str] = []
    for i in ids:
        if i not in seen:
            seen.append(i)
    return seen


def _flavor_text(flavor: str) -> str:
    return {
        "trainfix": "trainfix run config",
        "hf-training-args": "Hugging Face TrainingArguments",
        "lightning-hparams": "Lightning hparams.yaml",
    }.get(flavor, f"foreign {flavor.upper()} config")


# --------------------------------------------------------------------------- diagnosis


def diagnose_quietly(run_dir: Path, train_config: Optional[Path] = None):
    """The diagnosis of ``run_dir`` (read with the user's ``train_config`` when given, as
    ``diagnose --train-config`` does) when it holds readable logs of one run, else None."""
    from trainfix.errors import TrainfixError

    if not has_logs(run_dir):
        return None
    from trainfix.cli.common import expected_model
    from trainfix.diagnostics.pipeline import diagnose_paths

    try:
        report = diagnose_paths([run_dir], model_builder=expected_model, train_config=train_config)
    except TrainfixError:
        return None
    runs = list(getattr(report, "runs", []) or [])
    if len(runs) != 1:
        return None
    return runs[0]


LOG_PATTERNS = ("metrics.jsonl", "*.jsonl", "events.out.tfevents*", "*.csv", "trainer_state.json", "*.log",
                "*/events.out.tfevents*", "*/metrics.csv", "*/*/events.out.tfevents*", "*/*/metrics.csv")


def is_one_run(folder: Path) -> bool:
    """Whether ``folder`` is one run by diagnose's rule (not a folder of several runs)."""
    from trainfix.diagnostics.ingest.discover import find_runs

    return [Path(p) for p in find_runs(folder)] == [folder]


def has_logs(run_dir: Path) -> bool:
    """Whether ``run_dir`` looks like a run directory (some log file in it or just below)."""
    return any(next(run_dir.glob(p), None) is not None for p in LOG_PATTERNS)


# --------------------------------------------------------------------------- rendering


def show_recommendations(con, recs) -> None:
    if not recs:
        con.print("the diagnosis found nothing to fix")
        return
    con.print("[bold]recommended fixes[/] (best fix per finding):")
    for r in recs:
        f = r.finding
        sev = getattr(f.severity, "value", f.severity)
        head = f"  {sev:<7} {f.detector}"
        if r.recipe_id and r.shared:
            con.print(f"{escape(head)} -> [bold]{r.recipe_id}[/] (same fix as above)")
        elif r.recipe_id:
            con.print(f"{escape(head)} -> [bold]{r.recipe_id}[/]")
        else:
            why = "; ".join(f"{i}: {reason}" for i, reason in r.passed_over) or "no fix listed"
            con.print(f"{escape(head)} -> [dim]no config fix ({escape(why)})[/]")


def show_patch(con, patch, applied) -> None:
    label = f"[bold]{patch.recipe_id}[/]" + (f" (finding: {patch.finding})" if patch.finding else "")
    if applied.already_applied:
        con.print(f"{label}: already applied to this config (its provenance lists it); nothing to change")
        return
    con.print(label)
    for note in patch.notes:
        con.print(f"  [dim]{escape(note)}[/]")
    for e in applied.changed:
        con.print(f"  set {escape(e.describe())}")
    for e in applied.unchanged:
        con.print(f"  [dim]already {escape(e.dotted)} = {escape(str(e.new))}[/]")
    for a in patch.advice:
        con.print(f"  [yellow]advice:[/] {escape(a)}")


def show_diff(con, diff: str) -> None:
    for line in diff.splitlines():
        style = "green" if line.startswith("+") and not line.startswith("+++") else \
            "red" if line.startswith("-") and not line.startswith("---") else \
            "cyan" if line.startswith("@@") else None
        con.print(f"[{style}]{escape(line)}[/]" if style else escape(line))


# --------------------------------------------------------------------------- checkpoints


def _repair_checkpoint(ckpt: Path, fixes: list[str], output: Optional[Path], model_ref: Optional[str], dry_run: bool) -> None:
    from trainfix.fixes.recommend import make_recipe

    fixes = fixes or ["checkpoint-keys"]
    others = [f for f in fixes if f != "checkpoint-keys"]
    if others:
        raise UsageError(f"a checkpoint can only be repaired with checkpoint-keys, not {', '.join(others)}",
                         "config fixes apply to a run dir or a config file")
    if dry_run:
        raise UsageError("--dry-run applies to config patches", "trainfix inspect CKPT shows what checkpoint-keys would rename")
    recipe = make_recipe("checkpoint-keys")
    model = None
    if model_ref:
        from trainfix.cli.inspect import load_model_ref

        model = load_model_ref(model_ref)
    if output is not None and output.is_dir():
        output = output / recipe.default_out(ckpt).name
    result = recipe.repair(ckpt, output, model)
    con = out()
    con.print(f"renamed {result.renamed} of {result.n_keys or result.renamed} key(s)"
              + (f" (prefixes: {', '.join(result.prefixes)})" if result.prefixes else ""))
    for old, new in list(result.examples)[:5]:
        con.print(f"  [red]- {escape(old)}[/]\n  [green]+ {escape(new)}[/]")
    if result.verified_strict:
        con.print("proved: the repaired checkpoint loads into the model with strict=True")
    con.print(f"wrote [bold]{escape(str(result.out_path))}[/] (the input is unchanged)")


# --------------------------------------------------------------------------- relaunch


def relaunch_dir(run_dir: Optional[Path], config_path: Path) -> Path:
    """A fresh run dir for the relaunch: ``<run dir>-fixed`` beside the broken run (``-fixed-2``...),
    or ``runs/<config stem>`` under the current directory for a bare config file."""
    if run_dir is not None:
        base = run_dir.parent / f"{run_dir.name}-fixed"
    else:
        base = Path.cwd() / "runs" / config_path.name.split(".")[0]
        base = base.with_name(base.name + "-fixed")
    cand, n = base, 2
    while cand.exists():
        cand = base.with_name(f"{base.name}-{n}")
        n += 1
    return cand


def relaunch_trainfix(config_path: Path, run_dir: Optional[Path], resume_from: Optional[Path]) -> Path:
    """Train the patched config with trainfix's trainer into a new run dir; return it."""
    from trainfix.trainers import train

    out_dir = relaunch_dir(run_dir, config_path)
    out().print(f"relaunching: trainfix train --config {escape(str(config_path))} --out {escape(str(out_dir))}"
                + (f" (warm start from {escape(str(resume_from))})" if resume_from else ""))
    if resume_from is not None and not resume_from.is_file():
        raise InputError(f"--resume-from {resume_from}: no such checkpoint", "pass a .pt file from the run's checkpoints/")
    # A warm start is a new run that begins from the checkpoint's weights (fresh optimizer, schedule
    # and epoch count under the patched config); an exact resume would continue the old schedule.
    result = train(str(config_path), out_dir=out_dir, init_from=str(resume_from) if resume_from else None)
    done = Path(getattr(result, "out_dir", out_dir))
    out().print(f"new run: [bold]{escape(str(done))}[/]")
    return done


def run_user_command(template: str, config_path: Path, out_dir: Path) -> Optional[Path]:
    """Run ``template`` with ``{config}`` replaced by the (quoted) patched config path and ``{out}``
    by ``out_dir`` (a fresh run dir); return ``out_dir`` when the template names it, else None
    (trainfix then cannot know where the new run went).

    Output streams through; on failure the exit code and last lines are shown and TrainingError
    raised (the patched config stays where it was written)."""
    if "{config}" not in template:
        raise UsageError("--relaunch-cmd must contain {config} (where the patched config's path goes)",
                         "e.g. --relaunch-cmd 'python train.py --config {config} --out {out}'")
    cmd = template.replace("{config}", shlex.quote(str(config_path))).replace("{out}", shlex.quote(str(out_dir)))
    err().print(f"relaunching: {escape(cmd)}")
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=os.environ.copy())
    except OSError as exc:
        raise TrainingError(f"could not start the relaunch command: {exc}",
                            f"the patched config is kept at {config_path}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    code = proc.wait()
    if code != 0:
        raise TrainingError(
            f"the relaunch command failed with exit code {code}",
            f"the patched config is kept at {config_path}; fix the command and rerun it",
            details=[f"last {len(tail)} line(s):"] + list(tail),
        )
    return out_dir if "{out}" in template else None


def finish_with_comparison(before: Optional[Path], after: Optional[Path], before_config: Optional[Path] = None,
                           after_config: Optional[Path] = None) -> None:
    """End a relaunch with ``trainfix compare BEFORE AFTER`` (or say why it cannot)."""
    con = out()
    if after is None:
        con.print("the relaunch command has no {out}: trainfix does not know where the new run went; "
                  "compare it yourself: trainfix compare RUN_DIR NEW_RUN_DIR")
        return
    if before is None:
        con.print(f"new run: {escape(str(after))} (no diagnosed run before it to compare with)")
        return
    if not has_logs(after):
        con.print(f"[yellow]no training logs in {escape(str(after))}[/]: did the command write its logs to {{out}}? "
                  f"compare by hand: trainfix compare {escape(str(before))} NEW_RUN_DIR")
        return
    from trainfix.cli.common import expected_model
    from trainfix.cli.compare import render
    from trainfix.diagnostics.compare import comparison, diagnose_one

    con.print()
    render(comparison(diagnose_one(before, expected_model, train_config=before_config),
                      diagnose_one(after, expected_model, train_config=after_config)))
