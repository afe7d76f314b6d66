"""`trainfix report`: the self-contained HTML file, its charts, fixes, pictures and refusals; and,
marked slow, the same file rendered by headless Chromium (screenshot not blank, DOM holds every
finding)."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
import synthetic_runs as synthetic
from trainfix.diagnostics.pipeline import diagnose_paths
from trainfix.diagnostics.render_html import downsample, to_html

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write_run(run, folder: Path, config_text: str | None = None) -> Path:
    """A corpus run written as the trainer writes it: metrics.jsonl (+ config.yaml)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for rec in synthetic.as_records(run):
            fh.write(json.dumps(rec) + "\n")
    (folder / "config.yaml").write_text(config_text if config_text is not None else yaml.safe_dump(run.config))
    return folder


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    lr = write_run(synthetic.pathology("lr-miscaled", "seed"), root / "lr-buggy",
                   (EXAMPLES / "lr-scaling-buggy.yaml").read_text())
    nan = write_run(synthetic.pathology("nonfinite-loss", "quarter"), root / "nan-run")
    return lr, nan


def _report(paths, tmp_path, *extra) -> tuple[str, object]:
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", *map(str, paths), "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out.read_text(encoding="utf-8"), res


def test_downsample_keeps_extremes_and_limit():
    rng = np.random.default_rng(0)
    steps = np.arange(100_000, dtype=float)
    values = rng.normal(size=steps.size)
    values[77_777] = 50.0  # a spike
    values[12_345] = -40.0
    xs, ys = downsample(steps, values, 600)
    assert len(xs) <= 600
    assert ys.max() == 50.0 and ys.min() == -40.0
    assert np.all(np.diff(xs) > 0)


def test_report_holds_charts_findings_evidence_and_apply_diff(two_runs, tmp_path):
    text, _ = _report(two_runs, tmp_path)
    report = diagnose_paths(list(two_runs))
    findings = [f for r in report.runs for f in r.all_findings]
    assert {f.detector for f in findings} >= {"lr-miscaled", "nonfinite-loss"}
    for f in findings:
        assert f'data-detector="{f.detector}"' in text
        assert html.escape(f.message) in text
    # charts with the finding's steps shaded, before/after overlays for two runs
    assert text.count("<svg") >= 8 and 'class="shade"' in text
    assert 'id="overlay"' in text
    # the diff `trainfix apply` would make for the lr finding, computed on the run's config
    assert "trainfix apply --fix lr-sqrt-scaling" in text
    assert re.search(r'<span class="add">\+\s+lr_scaling: sqrt</span>', text)
    # evidence table and non-finite marks
    assert '<td class="k">effective_lr</td>' in text
    assert "non-finite values (red ticks)" in text


def test_report_is_self_contained(two_runs, tmp_path):
    text, _ = _report(two_runs, tmp_path)
    lowered = text.lower()
    for needle in ("<script", "<link", "src=\"http", "href=\"http", "@import", "url("):
        assert needle not in lowered, needle


def test_report_escapes_hostile_names(tmp_path):
    run = tmp_path / "evil"
    run.mkdir()
    tag = '<img src=x onerror=alert(1)>'
    with open(run / "metrics.jsonl", "w") as fh:
        for s in range(1, 60):
            fh.write(json.dumps({"step": s, "train/loss": 2.0 / s, tag: float(s)}) + "\n")
    text, _ = _report([run], tmp_path)
    assert "<img src=x" not in text


def test_long_run_stays_small(tmp_path):
    run = tmp_path / "long"
    run.mkdir()
    rng = np.random.default_rng(1)
    with open(run / "metrics.jsonl", "w") as fh:
        for s in range(1, 100_001):
            rec = {"step": s, "train/loss_step": float(2.0 * np.exp(-s / 30_000) + 0.1 * rng.random()),
                   "lr": 1e-3, "grad_norm": float(1 + rng.random())}
            if s % 1000 == 0:
                rec.update({"train/loss": 1.0 + 1.0 / s, "val/loss": 1.1 + 1.0 / s, "val/acc": 0.5})
            fh.write(json.dumps(rec) + "\n")
    _, res = _report([run], tmp_path)
    size = (tmp_path / "report.html").stat().st_size
    assert size < 2_000_000, size


def test_attention_pictures_are_embedded(tmp_path):
    from PIL import Image

    run = write_run(synthetic.healthy("fast"), tmp_path / "att")
    study = run / "maps"  # what `trainfix attention -o RUN/maps` writes
    (study / "samples").mkdir(parents=True)
    (study / "attention.json").write_text("{}")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    (study / "overview.png").write_bytes(buf.getvalue())
    (study / "samples" / "sample_000.png").write_bytes(buf.getvalue())
    (study / "samples" / "fake.png").write_bytes(b"not a png")
    text, _ = _report([run], tmp_path)
    assert text.count("data:image/png;base64,") == 2
    assert text.index("overview.png") < text.index("sample_000.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "overview.png").write_bytes(buf.getvalue())
    text, _ = _report([run], tmp_path, "--attention", str(elsewhere))
    assert text.count("data:image/png;base64,") == 3


def test_report_refuses_to_write_over_an_input(two_runs, tmp_path):
    target = two_runs[0] / "metrics.jsonl"
    before = target.read_bytes()
    res = CliRunner().invoke(app, ["report", str(two_runs[0]), "-o", str(target)])
    assert res.exit_code == 2
    assert "input" in res.output
    assert target.read_bytes() == before


def test_html_renderer_handles_a_run_without_findings():
    from trainfix.diagnostics.engine import diagnose
    from trainfix.diagnostics.report import Report

    rr = diagnose(synthetic.healthy("fast"))
    assert not rr.all_findings
    text = to_html(Report([rr]))
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "no findings" in text


# --- a real browser -------------------------------------------------------------------------------


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # .ci/run installs it; a missing browser must fail, not hide
        pytest.fail("chromium not found: install the Debian package 'chromium' (bash .ci/run does)")
    return exe


def _browser(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--disable-dev-shm-usage", "--no-first-run", "--mute-audio", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    from PIL import Image

    _report(two_runs, tmp_path)
    page = (tmp_path / "report.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    proc = _browser("--window-size=1280,2400", f"--screenshot={shot}", page)
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    ink = (img.sum(axis=2) < 600).mean()  # anything clearly darker than the white page
    assert ink > 0.02, f"screenshot nearly blank: {ink:.4f} of pixels drawn"
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    assert ((r - g > 30) & (r - b > 30)).mean() > 0.005, "no red finding shading or badge visible"
    assert ((b - r > 60)).mean() > 0.0005, "no blue curve visible"

    dom = _browser("--dump-dom", page).stdout.decode("utf-8", "replace")
    report = diagnose_paths(list(two_runs))
    for f in (f for r in report.runs for f in r.all_findings):
        assert f'data-detector="{f.detector}"' in dom
        assert html.escape(f.message, quote=False) in dom
    assert dom.count("<svg") >= 8


def _jsonl_run(folder: Path, first_step: int, n: int = 40) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"step": first_step + 10 * i, "train/loss": 2.0 / (i + 1)}) + "\n")
    return folder


def _overlay_starts(text: str) -> list[float]:
    """The x pixel where each line of the before/after charts starts."""
    overlay = text[text.index('id="overlay"'):text.index('id="run-0"')]
    return [float(m.group(1)) for m in re.finditer(r'<polyline [^>]*points="([\d.]+),', overlay)]


def test_overlays_draw_each_run_from_its_own_first_step(tmp_path):
    # the fixed run was relaunched at step 5,000: in absolute steps it would sit beside the
    # buggy run's end; from each run's start both curves begin at the left edge
    before = _jsonl_run(tmp_path / "before", 0)
    after = _jsonl_run(tmp_path / "after", 5000)
    text, _ = _report([before, after], tmp_path)
    starts = _overlay_starts(text)
    assert len(starts) >= 2 and len(starts) % 2 == 0
    assert starts[0] == starts[1] == 58.0  # PAD_L: both lines start at the left edge
    overlay = text[text.index('id="overlay"'):text.index('id="run-0"')]
    assert "steps from start 0" in overlay and "step 5000" not in overlay
    # each run's own charts keep the steps it logged
    assert "step 5000" in text[text.index('id="run-1"'):]
