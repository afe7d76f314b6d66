"""Which fix to apply for which finding: the first of the finding's fixes that has a safe edit.

A finding lists its fixes best first (the detector chose the order from its evidence).  For a
given config, :func:`recommend` keeps, per finding, the first config recipe whose ``plan`` returns
a patch; recipes that say "no safe edit" are passed over with their reason, so the caller can show
why the first choice was not taken.  Artifact recipes (``checkpoint-keys``) are recommended only
when asked for (they repair a file, not a config).  One recipe is recommended once even when
several findings ask for it (the first finding, the most severe, is the one recorded; the others
are marked ``shared``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from trainfix.diagnostics.finding import Finding, Severity
from trainfix.fixes.patch import Patch
from trainfix.fixes.recipes import RECIPES, load


@dataclass
class Recommendation:
    """The fix chosen for one finding (``patch`` planned on the config) and those passed over."""

    finding: Finding
    recipe_id: str | None
    patch: Patch | None
    passed_over: list[tuple[str, str]] = field(default_factory=list)  # (recipe id, reason)
    shared: bool = False  # the recipe was already recommended for an earlier finding


def make_recipe(recipe_id: str):
    return load(recipe_id)()


def check_fix_ids(fix_ids: Iterable[str]) -> None:
    """Raise UsageError (with a did-you-mean) for the first id that names no fix recipe.

    Cheap (a table look-up): ``apply`` calls it before reading or diagnosing anything, so a typo
    costs nothing but the start of the command."""
    import difflib

    from trainfix.errors import UsageError

    for fix_id in fix_ids:
        if fix_id not in RECIPES:
            close = difflib.get_close_matches(fix_id, list(RECIPES), n=1, cutoff=0.5)
            raise UsageError(f"unknown fix '{fix_id}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                             "trainfix list fixes shows every fix id")


def best_fix(config: dict, finding: Finding, *, covered: Iterable[str] = (), artifacts: bool = False) -> Recommendation:
    """The first fix id in ``finding.fixes`` whose plan on ``config`` is not None (or that is
    already in ``covered``: recommended for another finding, so this one shares it)."""
    passed: list[tuple[str, str]] = []
    covered = set(covered)
    for fix_id in finding.fixes:
        if fix_id not in RECIPES:
            passed.append((fix_id, "no such recipe"))
            continue
        if fix_id in covered:
            return Recommendation(finding, fix_id, None, passed, shared=True)
        recipe = make_recipe(fix_id)
        if recipe.kind != "config" and not artifacts:
            passed.append((fix_id, f"repairs a file, not the config (trainfix apply CKPT --fix {fix_id})"))
            continue
        patch = recipe.plan(config, finding)
        if patch is not None:
            patch.finding = finding.detector
            return Recommendation(finding, fix_id, patch, passed)
        passed.append((fix_id, recipe.reason or "no safe edit"))
    return Recommendation(finding, None, None, passed)


def recommend(config: dict, findings: Iterable[Finding], *, min_severity: str = "info") -> list[Recommendation]:
    """One recommendation per finding at or above ``min_severity``, most severe first; a recipe
    already recommended for an earlier finding is not recommended again."""
    ordered = sorted(findings, key=lambda f: -Severity(f.severity).rank)
    chosen: set[str] = set()
    out: list[Recommendation] = []
    for finding in ordered:
        if Severity(finding.severity) < Severity(min_severity):
            continue
        if finding.detector.startswith("internal") or finding.message.startswith("internal error"):
            continue
        rec = best_fix(config, finding, covered=chosen)
        if rec.recipe_id:
            chosen.add(rec.recipe_id)
        out.append(rec)
    return out


def finding_for(recipe, findings: Iterable[Finding]) -> Finding | None:
    """The finding a recipe answers: the first that lists it as a fix, else the first it resolves."""
    findings = list(findings)
    for f in findings:
        if recipe.id in f.fixes:
            return f
    for f in findings:
        if f.detector in recipe.resolves:
            return f
    return None


def plan_fixes(config: dict, fix_ids: Iterable[str], findings: Iterable[Finding] = (),
               provenance: Iterable[dict] = ()) -> tuple[list[Patch], list[str]]:
    """Plan each named config fix on ``config``.

    Returns (patches, already): ``already`` lists fixes with nothing left to do because the
    config's provenance shows them applied.  Raises FixError for a fix with no safe edit (its
    reason) and UsageError for an unknown id (with a did-you-mean) or an artifact recipe.
    """

    from trainfix.errors import FixError, UsageError

    findings = list(findings)
    done = {str(e.get("id")) for e in provenance if isinstance(e, dict)}
    patches: list[Patch] = []
    already: list[str] = []
    check_fix_ids(fix_ids)
    for fix_id in fix_ids:
        recipe = make_recipe(fix_id)
        if recipe.kind != "config":
            raise UsageError(f"'{fix_id}' repairs a checkpoint, not a config",
                             f"run: trainfix apply path/to/checkpoint.pt --fix {fix_id}")
        finding = finding_for(recipe, findings)
        patch = recipe.plan(config, finding)
        if patch is None:
            if fix_id in done:
                already.append(fix_id)
                continue
            raise FixError(f"fix '{fix_id}' does not apply to this config: {recipe.reason}",
                           "trainfix diagnose RUN_DIR lists the fixes that match a run's findings")
        if finding is not None:
            patch.finding = finding.detector
        patches.append(patch)
    return patches, already
