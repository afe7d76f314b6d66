"""The detector engine: selection, typed parameters, skips for missing roles, crash isolation.

Detectors here are small classes defined in this file; runs are built in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest

from trainfix.diagnostics import engine, pipeline
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.report import Report, exit_code, max_severity
from trainfix.diagnostics.roles_vocab import LR, TRAIN_LOSS, VAL_ACC, VAL_LOSS, Resolution, RoleMap
from trainfix.diagnostics.run import Run
from trainfix.errors import UsageError


def make_run(series: dict[str, list[float]], roles: dict[str, str] | None = None, path: str = "runs/a") -> Run:
    rows = []
    for tag, values in series.items():
        for i, v in enumerate(values):
            rows.append({"tag": tag, "step": float(10 * (i + 1)), "value": float(v),
                         "wall_time": 1000.0 + i, "source": "metrics.jsonl"})
    df = pd.DataFrame(rows, columns=["tag", "step", "value", "wall_time", "source"])
    rm = RoleMap(single={r: Resolution(t, "canonical name") for r, t in (roles or {}).items()})
    return Run(Path(path), df, roles=rm, inputs={"formats": {"jsonl": 1}, "points": len(df)})


class HighLoss(Detector):
    """Loss above a threshold."""

    name = "high-loss"
    severity = Severity.WARNING
    requires = (TRAIN_LOSS,)
    fixes = ("lower-lr",)

    @dataclass
    class Params:
        threshold: float = 1.0
        min_points: int = 3
        strict: bool = False
        mode: Literal["last", "max"] = "last"
        window: Optional[int] = None
        band: tuple[float, ...] = (0.1, 0.9)

    def check(self, run, params):
        s = run.role(TRAIN_LOSS)
        if len(s) < params.min_points:
            yield self.skip(f"only {len(s)} loss points, need {params.min_points}")
            return
        value = s.values[-1] if params.mode == "last" else s.values.max()
        if value > params.threshold:
            yield self.finding(f"loss is {value:.3g}, above {params.threshold}",
                               evidence={"value": value, "threshold": params.threshold},
                               steps=(s.steps[0], s.steps[-1]), tags=[s.tag],
                               severity=Severity.ERROR if params.strict else None)


class Crashes(Detector):
    """Always raises."""

    name = "crashes"
    severity = Severity.INFO

    def check(self, run, params):
        yield self.finding("first, then a crash")
        raise ZeroDivisionError("division by zero in a detector")


class NeedsVal(Detector):
    """Needs validation data."""

    name = "needs-val"
    requires = (VAL_ACC, VAL_LOSS)

    def check(self, run, params):
        yield self.finding("never runs without validation data")


class NeedsAny(Detector):
    """Needs one of two roles."""

    name = "needs-any"
    requires_any = (LR, VAL_LOSS)

    def check(self, run, params):
        return [self.finding("ran", severity=Severity.INFO)]


class YieldsJunk(Detector):
    """Yields a string instead of a Finding."""

    name = "yields-junk"

    def check(self, run, params):
        yield "oops"


class Quiet(Detector):
    """Never finds anything."""

    name = "loss-quiet"

    def check(self, run, params):
        return []


TABLE = {c.name: c for c in (HighLoss, Crashes, NeedsVal, NeedsAny, YieldsJunk, Quiet)}


@pytest.fixture
def run():
    return make_run({"train/loss": [3.0, 2.5, 2.0, 1.8]}, {TRAIN_LOSS: "train/loss"})


def test_runs_every_detector_and_collects_findings_skips_and_errors(run):
    rep = engine.diagnose(run, detectors=TABLE)
    assert [f.detector for f in rep.findings] == ["high-loss"]
    assert rep.findings[0].evidence["value"] == pytest.approx(1.8)
    assert rep.findings[0].fixes == ["lower-lr"]
    assert {s.detector for s in rep.skipped} == {"needs-val", "needs-any"}
    assert sorted(e.detector for e in rep.errors) == ["crashes", "yields-junk"]
    assert rep.checked == list(TABLE)
    assert rep.run is run


def test_a_crashing_detector_is_an_internal_error_and_its_partial_output_is_dropped(run):
    rep = engine.diagnose(run, detectors=TABLE)
    err = next(e for e in rep.errors if e.detector == "crashes")
    assert err.severity == Severity.ERROR
    assert err.message.startswith("internal error: ZeroDivisionError")
    assert err.evidence["where"].startswith("test_engine.py:")
    assert not any(f.detector == "crashes" for f in rep.findings)
    junk = next(e for e in rep.errors if e.detector == "yields-junk")
    assert "yielded str" in junk.message
    # the other detectors still ran
    assert any(f.detector == "high-loss" for f in rep.findings)


def test_missing_roles_give_a_skip_naming_them(run):
    rep = engine.diagnose(run, detectors=TABLE)
    reasons = {s.detector: s.reason for s in rep.skipped}
    assert "val_acc" in reasons["needs-val"] and "val_loss" in reasons["needs-val"]
    assert "validation accuracy" in reasons["needs-val"]
    assert reasons["needs-any"] == "missing roles: needs one of lr, val_loss"


def test_requires_any_runs_when_one_role_is_there():
    r = make_run({"train/loss": [1.0, 0.5, 0.2], "lr": [0.1, 0.1, 0.1]}, {TRAIN_LOSS: "train/loss", LR: "lr"})
    rep = engine.diagnose(r, detectors=TABLE, select=["needs-any"])
    assert [f.message for f in rep.findings] == ["ran"]


def test_a_detector_skip_is_recorded_with_its_reason():
    r = make_run({"train/loss": [3.0, 2.0]}, {TRAIN_LOSS: "train/loss"})
    rep = engine.diagnose(r, detectors=TABLE, select=["high-loss"])
    assert rep.findings == []
    assert rep.skipped == [Skip("high-loss", "only 2 loss points, need 3")]


@pytest.mark.parametrize(
    "select, ignore, expected",
    [
        (None, None, list(TABLE)),
        (["high-loss"], None, ["high-loss"]),
        (["needs"], None, ["needs-val", "needs-any"]),  # prefix at a word boundary
        (["needs-val,high-loss"], None, ["high-loss", "needs-val"]),  # comma lists, table order
        (None, ["needs", "crashes"], ["high-loss", "yields-junk", "loss-quiet"]),
        (["all"], ["yields-junk"], ["high-loss", "crashes", "needs-val", "needs-any", "loss-quiet"]),
        (["*-val"], None, ["needs-val"]),
        (["needs"], ["needs-any"], ["needs-val"]),  # ignore wins
    ],
)
def test_select_and_ignore_by_name_or_prefix(select, ignore, expected):
    assert engine.select_detectors(list(TABLE), select, ignore) == expected


def test_a_prefix_only_matches_at_a_word_boundary():
    with pytest.raises(UsageError, match="--select 'nee' matches no detector"):
        engine.select_detectors(list(TABLE), ["nee"], None)


def test_unknown_selector_suggests_the_closest_name(run):
    with pytest.raises(UsageError) as exc:
        engine.diagnose(run, detectors=TABLE, select=["high-los"])
    assert "did you mean 'high-loss'" in exc.value.hint
    with pytest.raises(UsageError, match="--ignore 'crash-es'"):
        engine.diagnose(run, detectors=TABLE, ignore=["crash-es"])


def test_params_override_changes_the_decision(run):
    quiet = engine.diagnose(run, detectors=TABLE, select=["high-loss"], params={"high-loss": {"threshold": "2.0"}})
    assert quiet.findings == []
    loud = engine.diagnose(run, detectors=TABLE, select=["high-loss"],
                           params={"high-loss": {"threshold": 0.5, "strict": "yes", "mode": "max"}})
    assert loud.findings[0].severity == Severity.ERROR
    assert loud.findings[0].evidence["value"] == pytest.approx(3.0)


def test_resolve_params_coerces_to_the_field_types():
    p = engine.resolve_params(HighLoss, {"threshold": "1e-3", "min-points": "5", "strict": "false",
                                         "window": "none", "band": "0.2, 0.8"})
    assert p.threshold == pytest.approx(1e-3) and isinstance(p.threshold, float)
    assert p.min_points == 5 and isinstance(p.min_points, int)
    assert p.strict is False
    assert p.window is None
    assert p.band == (0.2, 0.8)
    assert engine.resolve_params(HighLoss, {"window": "7", "min_points": 4.0}).window == 7
    assert engine.resolve_params(HighLoss, {}) == HighLoss.Params()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"treshold": 1}, "unknown parameter 'treshold' for detector 'high-loss'"),
        ({"threshold": "abc"}, "'high-loss.threshold': 'abc' is not a number"),
        ({"min_points": "2.5"}, "is not an integer"),
        ({"strict": "maybe"}, "is not true or false"),
        ({"mode": "median"}, "is not one of 'last', 'max'"),
        ({"threshold": True}, "is not a number"),
    ],
)
def test_bad_params_are_usage_errors(overrides, message):
    with pytest.raises(UsageError) as exc:
        engine.resolve_params(HighLoss, overrides)
    assert message in exc.value.message


def test_unknown_param_key_suggests_the_closest_one():
    with pytest.raises(UsageError) as exc:
        engine.resolve_params(HighLoss, {"treshold": 1})
    assert "did you mean 'high-loss.threshold'?" in exc.value.hint


def test_params_for_an_unknown_detector_are_a_usage_error_even_when_not_selected(run):
    with pytest.raises(UsageError) as exc:
        engine.diagnose(run, detectors=TABLE, params={"hihg-loss": {"threshold": 1}})
    assert "unknown detector 'hihg-loss'" in exc.value.message
    assert "high-loss" in exc.value.hint
    with pytest.raises(UsageError, match="unknown parameter"):  # validated though not selected
        engine.diagnose(run, detectors=TABLE, select=["crashes"], params={"high-loss": {"nope": 1}})


def test_params_post_init_validation_becomes_a_usage_error():
    class Ranged(Detector):
        """Validates its range."""

        name = "ranged"

        @dataclass
        class Params:
            fraction: float = 0.5

            def __post_init__(self):
                if not 0 < self.fraction < 1:
                    raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")

    with pytest.raises(UsageError, match="fraction must be in"):
        engine.resolve_params(Ranged, {"fraction": 3})


def test_findings_are_ordered_by_severity_then_table_order():
    class Many(Detector):
        """Several severities."""

        name = "many"

        def check(self, run, params):
            yield self.finding("info", severity=Severity.INFO, steps=(1, 2))
            yield self.finding("error", severity=Severity.ERROR, steps=(5, 6))
            yield self.finding("warning", steps=(3, 4))

    r = make_run({"train/loss": [1.0]}, {TRAIN_LOSS: "train/loss"})
    rep = engine.diagnose(r, detectors={"many": Many})
    assert [f.message for f in rep.findings] == ["error", "warning", "info"]


def test_max_severity_and_exit_code(run):
    rep = engine.diagnose(run, detectors=TABLE, select=["high-loss", "needs-any"])
    report = Report([rep])
    assert max_severity(report) == Severity.WARNING
    assert exit_code(report, "error") == 0
    assert exit_code(report, "warning") == 1
    assert exit_code(report, Severity.INFO) == 1
    clean = Report([engine.diagnose(run, detectors=TABLE, select=["loss-quiet"])])
    assert max_severity(clean) is None
    assert exit_code(clean, "info") == 0
    crashed = Report([engine.diagnose(run, detectors=TABLE, select=["crashes"])])
    assert max_severity(crashed) == Severity.ERROR  # internal errors count
    assert exit_code(crashed, "error") == 1


def test_table_detectors_that_fail_to_import_are_internal_errors(monkeypatch, run):
    from trainfix.diagnostics import detectors as det_pkg

    monkeypatch.setattr(det_pkg, "DETECTORS", {"ghost": "no_such_module:Ghost"})
    rep = engine.diagnose(run)
    assert rep.checked == ["ghost"]
    assert rep.errors[0].message.startswith("internal error: cannot load detector: ModuleNotFoundError")


def test_evidence_with_numpy_and_nonfinite_values_serialises():
    class Weird(Detector):
        """numpy evidence."""

        name = "weird"

        def check(self, run, params):
            yield self.finding("nan", evidence={"x": np.float32(1.5), "y": np.array([1, 2]), "z": float("nan")},
                               steps=(np.float64(10.0), np.int64(20)))

    rep = engine.diagnose(make_run({"t": [1.0]}), detectors={"weird": Weird})
    d = rep.to_dict()["findings"][0]
    assert d["evidence"] == {"x": 1.5, "y": [1, 2], "z": "nan"}
    assert d["steps"] == [10, 20]


def test_diagnose_paths_merges_settings_and_arguments(monkeypatch, tmp_path):
    seen = {}

    def fake_find(path):
        return [path / "r1", path / "r2"]

    def fake_read(path, *, metric_overrides, settings, train_config=None):
        seen.setdefault("overrides", []).append(metric_overrides)
        return make_run({"train/loss": [3.0, 2.5, 2.0, 1.8]}, {TRAIN_LOSS: "train/loss"}, path=str(path))

    class S:
        metrics = {"val_acc": "Val Acc"}
        detectors = {"high-loss": {"threshold": 5.0, "mode": "max"}}
        select = ["high-loss", "needs"]
        ignore = ["needs-val"]
        fail_on = None

    monkeypatch.setattr(pipeline, "_find_runs", fake_find)
    monkeypatch.setattr(pipeline, "_read_run", fake_read)
    rep = pipeline.diagnose_paths([tmp_path], settings=S(), metric_overrides={"lr": "LR"}, detectors=TABLE)
    assert [r.path for r in rep.runs] == [tmp_path / "r1", tmp_path / "r2"]
    assert seen["overrides"][0] == {"val_acc": "Val Acc", "lr": "LR"}
    assert rep.runs[0].checked == ["high-loss", "needs-any"]
    assert rep.runs[0].findings == []  # threshold 5 from settings
    rep = pipeline.diagnose_paths([tmp_path], settings=S(), params={"high-loss": {"threshold": "2"}}, detectors=TABLE)
    assert rep.runs[0].findings[0].evidence == {"value": 3.0, "threshold": 2.0}  # mode=max kept from settings
    rep = pipeline.diagnose_paths([tmp_path], settings=S(), select=["loss"], detectors=TABLE)
    assert rep.runs[0].checked == ["loss-quiet"]  # an explicit select replaces the settings' select


def test_diagnose_paths_checks_selectors_before_reading(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline, "_read_run", lambda *a, **k: pytest.fail("read before validating"))
    with pytest.raises(UsageError):
        pipeline.diagnose_paths([tmp_path], select=["nope"], detectors=TABLE)
    with pytest.raises(UsageError, match="is not a number"):
        pipeline.diagnose_paths([tmp_path], params={"high-loss": {"threshold": "x"}}, detectors=TABLE)


def test_a_missing_path_is_an_input_error(tmp_path):
    from trainfix.errors import InputError

    with pytest.raises(InputError, match="no such file or directory"):
        pipeline.diagnose_paths([tmp_path / "missing"], detectors=TABLE)


def test_findings_from_a_detector_get_its_table_name():
    class Misnamed(Detector):
        """Returns a finding with another name."""

        name = "misnamed"

        def check(self, run, params):
            return [Finding("something-else", "warning", "x")]

    rep = engine.diagnose(make_run({"t": [1.0]}), detectors={"misnamed": Misnamed})
    assert rep.findings[0].detector == "misnamed"
    assert rep.findings[0].severity is Severity.WARNING
