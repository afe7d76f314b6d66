"""The fix-recipe base: a recipe turns a finding into a config patch, or says why it cannot.

A recipe has a stable kebab-case ``id``, the detector names it ``resolves``, a ``kind``
(``"config"``: edits a config file; ``"artifact"``: repairs a file such as a checkpoint), the
``knobs`` it edits (names from :mod:`trainfix.diagnostics.knobs`) and ``warm_start`` (whether a
relaunch may resume from the broken run's checkpoint).  ``plan(config, finding)`` returns a
:class:`~trainfix.fixes.patch.Patch`, or ``None`` when there is no safe edit for this config; that
is a normal outcome and ``self.reason`` says why, in words the user can act on.

Recipes express edits as knobs through :class:`PatchBuilder`: for a trainfix config the knob's
canonical path is set (created if absent); for a foreign config every key matching one of the
knob's aliases is set, in its own type (a string lr stays a string), and a knob the file does not
have becomes concrete advice ("your config has no warmup setting: add 5 warmup epochs to your
scheduler").  Each recipe module's docstring has the sections *What it changes / When to use /
Why / Example diff*; ``trainfix explain ID`` prints it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from trainfix.diagnostics import knobs as K
from trainfix.diagnostics.finding import Finding
from trainfix.fixes.patch import MISSING, Edit, Patch, get_path
from trainfix.values import is_trainfix_config


def sig(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant figures (configs read better: 0.00015, not 0.000150000001)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def evidence_number(finding: Finding | None, *names: str) -> float | None:
    """The first of ``names`` present in the finding's evidence as a finite number."""
    if finding is None:
        return None
    for name in names:
        value = (finding.evidence or {}).get(name)
        if isinstance(value, bool) or value is None:
            continue
        try:
            f = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            return f
    return None


class PatchBuilder:
    """Collects a recipe's edits on one config, as knobs (see module docstring)."""

    def __init__(self, recipe_id: str, config: dict, finding: Finding | None = None):
        self.recipe_id = recipe_id
        self.config = config or {}
        self.own = is_trainfix_config(self.config)
        self.patch = Patch(recipe_id, finding=finding.detector if finding else None)

    # reading ---------------------------------------------------------------------------------
    def has(self, knob: str) -> bool:
        if self.own:
            return get_path(self.config, tuple(K.KNOBS[knob].path.split("."))) is not MISSING
        return bool(self._foreign_hits(knob))

    def get(self, knob: str, default: Any = None) -> Any:
        if self.own:
            value = get_path(self.config, tuple(K.KNOBS[knob].path.split(".")))
            return default if value is MISSING else value
        hits = self._foreign_hits(knob)
        return hits[0][1] if hits else default

    def get_float(self, knob: str, default: float | None = None) -> float | None:
        value = self.get(knob)
        if isinstance(value, bool) or value is None:
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            return default

    def section(self, name: str) -> dict:
        value = self.config.get(name) if isinstance(self.config, dict) else None
        return value if isinstance(value, dict) else {}

    def _foreign_hits(self, knob: str) -> list[tuple[tuple[str, ...], Any]]:
        return [(p, v) for p, v in K.locate(self.config, knob) if not isinstance(v, dict)]

    # writing ---------------------------------------------------------------------------------
    def set(self, knob: str, new: Any, reason: str, *, advice: str | None = None) -> bool:
        """Set ``knob`` to ``new``; in a foreign config without the knob, record ``advice``.

        Returns whether any key was edited.
        """
        if self.own:
            path = tuple(K.KNOBS[knob].path.split("."))
            self.patch.edits.append(Edit(path, get_path(self.config, path), new, reason))
            return True
        hits = self._foreign_hits(knob)
        edited = False
        for path, old in hits:
            if not can_hold(old, new):
                # the user's script reads this key as a number (or a list...): writing another kind
                # of value would crash it, so the change becomes advice instead
                self.advice(f"{'.'.join(path)} holds {old!r}, not a place for {new!r}: "
                            + (advice or f"change it in your code ({reason})"))
                continue
            self.patch.edits.append(Edit(path, old, _like(old, new), reason))
            edited = True
        if not hits and advice:
            self.advice(advice)
        return edited

    def set_path(self, path: Iterable[str], new: Any, reason: str) -> None:
        """Set an explicit path (trainfix configs: keys that are not knobs, like ``stages``)."""
        path = tuple(path)
        self.patch.edits.append(Edit(path, get_path(self.config, path), new, reason))

    def scale(self, knob: str, factor: float, reason: str, *, advice: str | None = None) -> bool:
        """Multiply every numeric value of ``knob`` by ``factor`` (marks the patch relative)."""
        self.patch.relative = True
        if self.own:
            value = self.get_float(knob)
            if value is None:
                if advice:
                    self.advice(advice)
                return False
            return self.set(knob, sig(value * factor), reason)
        done = False
        for path, old in self._foreign_hits(knob):
            try:
                value = float(old)
            except (TypeError, ValueError):
                continue
            self.patch.edits.append(Edit(path, old, _like(old, sig(value * factor)), reason))
            done = True
        if not done and advice:
            self.advice(advice)
        return done

    def advice(self, text: str) -> None:
        if text not in self.patch.advice:
            self.patch.advice.append(text)

    def note(self, text: str) -> None:
        if text not in self.patch.notes:
            self.patch.notes.append(text)

    def result(self) -> Patch | None:
        return self.patch if (self.patch.edits or self.patch.advice) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_text(value: Any) -> bool:
    try:
        float(str(value))
        return True
    except ValueError:
        return False


def can_hold(old: Any, new: Any) -> bool:
    """Whether a foreign config's key holding ``old`` can take ``new`` without changing the kind of
    value the user's script reads there: a number stays a number (``log_var_init: 0.0`` cannot
    become ``random``), a numeric string stays numeric, a word stays a word, a list stays a list, a
    mapping stays a mapping, a switch takes a switch or a word (see :func:`_like`).  An absent or
    null value takes anything."""
    if old is MISSING or old is None:
        return True
    if isinstance(old, bool):
        return isinstance(new, (bool, str))  # a word becomes a switch (see _like)
    if _is_number(old):
        return _is_number(new)
    if isinstance(old, str):
        if _numeric_text(old):
            return _is_number(new) or (isinstance(new, str) and _numeric_text(new))
        return isinstance(new, str)
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    if isinstance(old, dict):
        return isinstance(new, dict)
    return True


def _like(old: Any, new: Any) -> Any:
    """``new`` in the type of ``old``: a quoted number stays quoted, an int stays an int when whole."""
    if old is MISSING or old is None:
        return new
    if isinstance(old, str) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return f"{new:g}" if isinstance(new, float) else str(new)
    if isinstance(old, bool) and isinstance(new, str):
        return new.lower() not in ("none", "false", "off", "uniform", "hard", "0", "")
    if isinstance(old, int) and not isinstance(old, bool) and isinstance(new, float) and new.is_integer():
        return int(new)
    return new


class Recipe:
    """Base class of fix recipes (see module docstring)."""

    id: str = ""
    resolves: tuple[str, ...] = ()
    kind: str = "config"
    knobs: tuple[str, ...] = ()
    #: the finding-evidence keys ``plan`` reads; each is emitted by a detector this recipe answers
    #: (one it resolves or one whose findings name it as a fix), checked by a contract test
    evidence: tuple[str, ...] = ()
    warm_start: bool = True

    def __init__(self) -> None:
        self.reason: str | None = None

    def plan(self, config: dict, finding: Finding | None = None) -> Patch | None:
        """The patch for ``config`` (and the finding it answers), or None with ``self.reason`` set."""
        raise NotImplementedError

    def skip(self, reason: str) -> None:
        """Record why there is no safe edit and return None (``return self.skip("...")``)."""
        self.reason = reason
        return None

    def builder(self, config: dict, finding: Finding | None) -> PatchBuilder:
        self.reason = None
        return PatchBuilder(self.id, config, finding)

    def finish(self, b: PatchBuilder, reason_if_empty: str) -> Patch | None:
        patch = b.result()
        if patch is None:
            return self.skip(reason_if_empty)
        return patch

    @classmethod
    def summary(cls) -> str:
        """The docstring's first line."""
        import sys

        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.id
