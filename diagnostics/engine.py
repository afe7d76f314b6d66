"""The detector engine: which detectors run, with which thresholds, and what each one said.

:func:`diagnose` runs every detector of the table (``trainfix.diagnostics.detectors.DETECTORS``,
imported lazily) over one :class:`~trainfix.diagnostics.run.Run` and collects a
:class:`~trainfix.diagnostics.report.RunReport`:

- **Selection.** ``select`` and ``ignore`` take detector names or prefixes.  A prefix matches at a
  word boundary of the kebab-case name (``loss`` selects ``loss-divergence`` and ``loss-plateau``,
  ``accuracy`` both ``accuracy-*`` detectors); ``*`` globs and ``all`` work too.  ``ignore`` wins
  over ``select``.  A selector that matches nothing is a usage error with a did-you-mean.
- **Thresholds.** Each detector's ``Params`` dataclass holds typed defaults; ``params`` maps a
  detector name to overrides (from ``[tool.trainfix.detectors.<name>]`` or ``--param``).  Values are
  coerced to the field's type (``"0.01"`` -> ``0.01``, ``"true"`` -> ``True``); an unknown detector,
  unknown key or uncoercible value is a :class:`~trainfix.errors.UsageError` naming the closest
  match.  All overrides are validated before any detector runs.
- **Missing data.** A detector whose ``requires`` roles are not all resolved, or none of whose
  ``requires_any`` roles is, is skipped with the missing role names; it is not run.  The table
  holds each detector's roles, so such a detector is not even imported (a skipped detector whose
  module would fail to import is a skip, not an internal error).
- **Crash isolation.** A detector that cannot be imported, raises, or yields something that is not a
  Finding or Skip becomes one internal-error finding (severity error, message ``internal error:
  ...``) in ``RunReport.errors``; everything it yielded before is dropped and the rest still run.

:func:`diagnose_paths` is the whole pipeline the CLI uses: paths -> runs (ingest) -> reports.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import sys
import traceback
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

from trainfix import values
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.report import RunReport
from trainfix.errors import UsageError

if typing.TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

#: what a role means, for skip reasons a user can act on
ROLE_HINTS = {
    "train_loss": "training loss",
    "train_loss_step": "per-step training loss",
    "val_loss": "validation loss",
    "val_acc": "validation accuracy",
    "val_metric": "a validation metric",
    "train_acc": "training accuracy",
    "lr": "learning rate",
    "grad_norm": "gradient norm",
    "memory": "memory usage",
    "sparsity_active_fraction": "sparsity active fraction",
    "mil_temperature": "MIL temperature",
    "loss_terms": "loss terms such as loss/<term>",
    "loss_terms_raw": "raw loss terms such as loss/<term>/raw",
    "uw_weights": "uncertainty weights such as uw/weight/<task>",
    "uw_log_vars": "uncertainty log-variances such as uw/log_var/<task>",
    "class_metrics": "per-class metrics such as val/acc/<class>",
    "val_metrics": "validation metrics",
    "attn_metrics": "attention metrics such as attn/<metric>",
    "task_losses": "per-task losses such as loss/task/<task>",
}


# --- public API -------------------------------------------------------------------------------


def diagnose(
    run: "Run",
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    detectors: Mapping[str, type] | None = None,
) -> RunReport:
    """Run the selected detectors over ``run`` and collect findings, skips and internal errors.

    ``detectors`` replaces the table (name -> detector class), for tests and embedding; by default
    the classes of ``DETECTORS`` are imported on first use.  Raises :class:`UsageError` for bad
    selectors or parameter overrides before running anything.
    """
    table = _Table(detectors)
    chosen = select_detectors(table.names, select, ignore)
    resolved: dict[str, Any] = {}
    errors: list[Finding] = []
    overrides = dict(params or {})
    _check_param_names(table.names, overrides)
    for name in table.names:  # validate every override, even of detectors not selected this time
        if name in overrides:
            cls = table.load(name)  # an import error here is the user's only hint: let it surface
            resolved[name] = resolve_params(cls, overrides[name])

    findings: list[Finding] = []
    skipped: list[Skip] = []
    for name in chosen:
        reason = table.missing_roles(name, run)  # from the table's roles: a skip imports nothing
        if reason is None:
            try:
                cls = table.load(name)
            except Exception as exc:
                errors.append(_internal_error(name, exc, "cannot load detector"))
                continue
            reason = missing_roles(cls, run)
        if reason:
            skipped.append(Skip(name, reason))
            continue
        try:
            p = resolved[name] if name in resolved else resolve_params(cls, {})
            out = list(cls().check(run, p) or ())
            bad = [o for o in out if not isinstance(o, (Finding, Skip))]
            if bad:
                raise TypeError(f"check() yielded {type(bad[0]).__name__}, expected Finding or Skip")
        except Exception as exc:
            errors.append(_internal_error(name, exc))
            continue
        for item in out:
            if isinstance(item, Skip):
                skipped.append(Skip(name, item.reason))
            else:
                item.detector = name
                item.severity = Severity(item.severity)
                findings.append(item)

    order = {n: i for i, n in enumerate(table.names)}
    findings.sort(key=lambda f: (-f.severity.rank, order.get(f.detector, 0), _first_step(f)))
    return RunReport(
        path=run.path,
        inputs=dict(run.inputs),
        findings=findings,
        skipped=skipped,
        errors=errors,
        checked=list(chosen),
        run=run,
    )


def resolve_params(detector_cls: type, overrides: Mapping[str, Any] | None) -> Any:
    """The detector's ``Params`` with ``overrides`` applied, each value coerced to its field type.

    Keys may use ``-`` or ``_``.  Unknown keys and values that do not fit the type raise
    :class:`UsageError` naming the detector, the key and what was expected.
    """
    name = getattr(detector_cls, "name", detector_cls.__name__)
    params_cls = getattr(detector_cls, "Params", None)
    if params_cls is None or not dataclasses.is_dataclass(params_cls):
        raise TypeError(f"detector {name}: Params must be a dataclass")
    fields = {f.name: f for f in dataclasses.fields(params_cls) if f.init}
    hints = _type_hints(params_cls)
    kwargs: dict[str, Any] = {}
    for raw_key, value in (overrides or {}).items():
        key = str(raw_key).replace("-", "_")
        if key not in fields:
            known = sorted(fields)
            close = difflib.get_close_matches(key, known, n=1)
            hint = (f"did you mean '{name}.{close[0]}'?" if close
                    else (f"its parameters: {', '.join(known)}" if known else f"'{name}' has no parameters"))
            hint += f" (see 'trainfix explain {name}')"
            raise UsageError(f"unknown parameter '{raw_key}' for detector '{name}'", hint)
        kwargs[key] = coerce(value, hints.get(key, fields[key].type), f"{name}.{key}")
    try:
        return params_cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a Params __post_init__ may validate ranges
        raise UsageError(f"invalid parameters for detector '{name}': {exc}",
                         f"see 'trainfix explain {name}'") from None


def select_detectors(names: list[str], select: Iterable[str] | None,
                     ignore: Iterable[str] | None) -> list[str]:
    """The names (in table order) that match ``select`` (all when empty) and no ``ignore`` entry."""
    select = _split(select)
    ignore = _split(ignore)
    chosen = set(names) if not select else set()
    for sel in select:
        chosen |= _match(sel, names, "--select")
    for ign in ignore:
        chosen -= _match(ign, names, "--ignore")
    return [n for n in names if n in chosen]


def missing_roles(detector_cls: type, run: "Run") -> str | None:
    """Why the detector cannot run on this run (missing role names), or None when it can."""
    return _missing(getattr(detector_cls, "requires", ()), getattr(detector_cls, "requires_any", ()), run)


def _missing(requires: Iterable[str], requires_any: Iterable[str] | None, run: "Run") -> str | None:
    """The skip reason for roles ``run`` lacks: one of ``requires``, or all of ``requires_any``."""
    roles = run.roles
    missing = [r for r in requires if not roles.has(r)]
    if missing:
        described = ", ".join(f"{r} ({ROLE_HINTS[r]})" if r in ROLE_HINTS else r for r in missing)
        return f"missing role{'s' if len(missing) > 1 else ''}: {described}"
    any_of = tuple(requires_any or ())
    if any_of and not any(roles.has(r) for r in any_of):
        return "missing roles: needs one of " + ", ".join(any_of)
    return None


def check_options(detectors: Mapping[str, type] | None, select: list[str], ignore: list[str],
                  params: Mapping[str, Mapping[str, Any]]) -> None:
    """Validate selectors and parameter overrides against the table (UsageError with did-you-mean),
    so that a typo fails before any file is read."""
    table = _Table(detectors)
    select_detectors(table.names, select, ignore)
    _check_param_names(table.names, params)
    for name, overrides in params.items():
        resolve_params(table.load(name), overrides)


# --- value coercion --------------------------------------------------------------------------

def coerce(value: Any, tp: Any, where: str = "value") -> Any:
    """``value`` (text from ``--param`` or a settings file) converted to the annotation ``tp`` by
    :func:`trainfix.values.coerce`; raises :class:`UsageError` naming ``where`` and what was expected."""
    try:
        return values.coerce(value, tp)
    except values.BadValue as exc:
        raise UsageError(f"bad value for '{where}': {exc.value!r} is not {exc.expected}",
                         f"set it as {where}=<{exc.expected}>, e.g. with --param") from None


def _type_hints(cls: type) -> dict[str, Any]:
    """Field annotations resolved to types (string annotations evaluated in the class's module)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:
        module = sys.modules.get(cls.__module__)
        ns = dict(vars(module)) if module else {}
        out = {}
        for f in dataclasses.fields(cls):
            t = f.type
            if isinstance(t, str):
                try:
                    t = eval(t, ns, {})  # noqa: S307 - annotation text of our own dataclasses
                except Exception:
                    t = Any
            out[f.name] = t
        return out


# --- selection, table, errors ---------------------------------------------------------------


def _split(items: Iterable[str] | None) -> list[str]:
    """Selectors from repeated options and/or comma-separated lists."""
    out: list[str] = []
    for item in items or ():
        out += [s.strip() for s in str(item).split(",") if s.strip()]
    return out


def _match(selector: str, names: list[str], option: str) -> set[str]:
    sel = selector.strip().lower()
    if sel in ("all", "*"):
        return set(names)
    if any(ch in sel for ch in "*?["):
        hit = {n for n in names if fnmatch.fnmatchcase(n, sel)}
    else:
        prefix = sel.rstrip("-")
        hit = {n for n in names if n == sel or n.startswith(prefix + "-")}
    if not hit:
        close = difflib.get_close_matches(sel, names, n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see 'trainfix list detectors'"
        raise UsageError(f"{option} '{selector}' matches no detector", hint)
    return hit


def _check_param_names(names: list[str], overrides: Mapping[str, Any]) -> None:
    for det in overrides:
        if det not in names:
            close = difflib.get_close_matches(det, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see 'trainfix list detectors'"
            raise UsageError(f"parameters given for unknown detector '{det}'", hint)
        if not isinstance(overrides[det], Mapping):
            raise UsageError(f"parameters of detector '{det}' must be a table of key = value",
                             f"write [tool.trainfix.detectors.{det}] with one key per line")


class _Table:
    """Detector name -> class, from an explicit mapping or the lazy ``DETECTORS`` table."""

    def __init__(self, detectors: Mapping[str, type] | None):
        if detectors is not None:
            self._explicit: dict[str, type] | None = dict(detectors)
            self.names = list(self._explicit)
        else:
            from trainfix.diagnostics.detectors import DETECTORS

            self._explicit = None
            self.names = list(DETECTORS)

    def load(self, name: str) -> type:
        if self._explicit is not None:
            return self._explicit[name]
        from trainfix.diagnostics.detectors import load

        return load(name)

    def missing_roles(self, name: str, run: "Run") -> str | None:
        """The skip reason from the roles the table lists for ``name``, without importing it;
        None when they are all there or only the class knows (an explicit mapping)."""
        if self._explicit is not None:
            return None
        from trainfix.diagnostics.detectors import requirements

        known = requirements(name)
        return _missing(*known, run) if known is not None else None


def _internal_error(name: str, exc: BaseException, what: str = "") -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    prefix = f"{what}: " if what else ""
    return Finding(
        detector=name,
        severity=Severity.ERROR,
        message=f"internal error: {prefix}{type(exc).__name__}: {exc}",
        evidence={"exception": type(exc).__name__, "where": where},
        fixes=[],
        confidence=1.0,
    )


def _first_step(f: Finding) -> float:
    try:
        return float(f.steps[0]) if f.steps else 0.0
    except (TypeError, ValueError, IndexError):
        return 0.0
