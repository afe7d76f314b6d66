"""Find the inputs of a run: which files are logs (and of which format), configs, checkpoints.

Classification looks at names first and sniffs content only where names are ambiguous (Keras'
CSVLogger writes ``training.log``; DETR-style trainers write JSON lines to ``log.txt``).

Splitting a directory into runs (:func:`find_runs`) -- the rule:

1. A file is one run.
2. A directory that directly holds a log file or a run marker (``config.yaml``, ``hparams.yaml``,
   ``args.json``, ``config.json``, ``trainer_state.json``, an MLflow run's ``meta.yaml`` next to
   ``metrics/``) is one run, including everything below it (``tb/``, ``logs/``, ``checkpoints/``).
3. Otherwise look at the child directories that hold logs somewhere below.  One such child: the
   directory is one run, unless that child itself splits into several (``mlruns/0/<run ids>``).
   Several children are one run when they are parts of one run: all named as data partitions
   (``train/`` + ``validation/``, as Keras' TensorBoard callback writes them), all checkpoint
   folders (``checkpoint-500/`` + ``checkpoint-1000/``), or any of them named as a kind of output
   (``tb/``, ``tensorboard/``, ``logs/``, ``csv/``, ``metrics/``, ...).  Otherwise each child is a run
   of its own (``lightning_logs/version_0`` + ``version_1``; ``baseline/`` + ``lower-lr/``), split
   further by the same rule.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from trainfix.diagnostics.ingest.history import looks_like_history
from trainfix.diagnostics.ingest.ultralytics import looks_like_ultralytics
from trainfix.diagnostics.ingest.whitespace import looks_like_table

LOG_FORMATS = ("tensorboard", "csv", "jsonl", "trainer_state", "text", "mlflow", "table", "history", "ultralytics")

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
TEXT_SUFFIXES = (".log", ".txt", ".out", ".err")
TEXT_NAMES = ("stdout", "stderr", "output", "log", "train_log", "console")
# Never logs or configs, whatever their suffix.
IGNORED_NAMES = re.compile(
    r"^(requirements.*\.txt|readme.*|license.*|licence.*|cmakelists\.txt|notice.*|changelog.*|"
    r"package(-lock)?\.json|tsconfig\.json|vocab.*|merges\.txt|tokenizer.*\.json|special_tokens_map\.json|"
    r"added_tokens\.json|.*\.ipynb|environment\.ya?ml|\.pre-commit-config\.yaml|dataset.*\.json|attention\.json)$",
    re.I,
)
# Hugging Face's pickled TrainingArguments: settings, not weights; never loaded (not even weights-only).
NOT_CHECKPOINTS = {"training_args.bin"}
# Final metrics that trainers write once (``all_results.json``, YOLO's ``results.json``): neither a
# config nor a series.
RESULT_FILES = re.compile(r"^(?:(?:all|train|eval|val|test|predict)_)?results\.json$", re.I)
# What ``trainfix apply`` writes: ``<name>.fixed.<ext>`` (``.fixed-2``...) and the provenance sidecar
# of a patched JSON config.
APPLY_OUTPUT = re.compile(r"^(?P<base>.+?)\.fixed(?:-\d+)?(?P<ext>\.[A-Za-z0-9]+)$", re.I)
APPLY_SIDECAR = ".applied_fixes.json"
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".hg", ".svn", "wandb", ".ipynb_checkpoints",
             ".trash", "venv", ".venv"}
PATTERNS_LOOKED_FOR = (
    "events.out.tfevents.* (TensorBoard)",
    "*.csv (Lightning/Keras/Ultralytics/generic)",
    "*.jsonl, metrics.json, *.log.json, JSON-lines log.txt",
    "trainer_state.json (Hugging Face)",
    "*.log/*.txt/*.out stdout text with metric lines",
    "results.txt (YOLO) and whitespace/tab tables",
    "*history*.json (per-epoch lists, Keras History)",
    "Ultralytics YOLOv8/YOLO11 console output saved to a file",
    "mlruns/<exp>/<run>/metrics/<name> (MLflow)",
)
RUN_MARKERS = {"config.yaml", "config.yml", "hparams.yaml", "args.json", "config.json", "trainer_state.json",
               "opt.yaml", "args.yaml"}
PARTITION_NAMES = {"train", "training", "val", "valid", "validation", "eval", "evaluation", "test", "testing", "dev"}
PART_NAMES = {"tb", "tensorboard", "tb_logs", "tblogs", "logs", "log", "csv", "csv_logs", "metrics", "text",
              "stdout", "events", "summaries", "summary", "output", "outputs", "configs", "plots", "scalars"}
CHECKPOINT_DIR = re.compile(r"^(checkpoint[-_]?\d+|checkpoints?|ckpts?|weights)$", re.I)
SNIFF_BYTES = 4096


@dataclass
class Inputs:
    """What one run directory holds, classified."""

    root: Path
    # (path, format); the path as a string, since 50,000 small logs as Path objects cost 20 MiB
    logs: list[tuple[str, str]] = field(default_factory=list)
    configs: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {path, reason}


def _head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    from trainfix.diagnostics.ingest.safe_read import head

    return head(path, n)  # b"" for FIFOs, devices and unreadable files: never blocks


def _looks_jsonl(head: bytes) -> bool:
    lines = [ln.strip() for ln in head.splitlines() if ln.strip()]
    if not lines:
        return False
    first = lines[0]
    if not first.startswith(b"{"):
        return False
    try:
        json.loads(first)
        return True
    except ValueError:
        # A long first line cut by the sniff window still counts when it opens like JSON.
        return len(lines) == 1 and first.startswith(b'{"')


def _looks_csv(head: bytes) -> bool:
    # blank lines are skipped: a CSV written in text mode on Windows ends its rows with \r\r\n
    lines = [ln for ln in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines() if ln.strip()]
    if len(lines) < 2:
        return False
    header = [c.strip().lower() for c in lines[0].split(",")]
    if len(header) < 2 or not any(h in ("epoch", "step", "iteration", "iter") for h in header):
        return False
    return lines[1].count(",") == lines[0].count(",")


def classify(path: Path) -> str | None:
    """The format of a file: a log format, ``config``, ``checkpoint``, or None (not ours)."""
    name = path.name
    low = name.lower()
    if "tfevents" in low:
        return "tensorboard"
    if IGNORED_NAMES.match(low) or low in NOT_CHECKPOINTS or RESULT_FILES.match(low) or low.endswith(APPLY_SIDECAR):
        return None
    if low.endswith(CHECKPOINT_SUFFIXES):
        return "checkpoint"
    for parent in list(path.parents)[:4]:  # metric names with "/" are nested folders
        if parent.name == "metrics" and (parent.parent / "meta.yaml").is_file():
            return "mlflow"
    if low == "trainer_state.json":
        return "trainer_state"
    if low.endswith(".csv"):
        return "csv"
    if low.endswith(".jsonl") or low.endswith(".log.json") or low == "metrics.json":
        return "jsonl"
    if low.endswith(".json"):
        return "history" if looks_like_history(path) else "config"
    if low.endswith((".yaml", ".yml")):
        if low == "meta.yaml" and (path.parent / "metrics").is_dir():
            return None  # MLflow bookkeeping
        return "config"
    stem_is_text = low.endswith(TEXT_SUFFIXES) or low.split(".")[0] in TEXT_NAMES or re.match(r"slurm-\d+", low)
    if stem_is_text:
        head = _head(path)
        if _looks_jsonl(head):
            return "jsonl"
        if _looks_csv(head):
            return "csv"
        if looks_like_table(head):
            return "table"
        if looks_like_ultralytics(path):
            return "ultralytics"
        return "text"
    return None


def _sniff_named_file(path: Path) -> str | None:
    """A file the user named explicitly but whose name says nothing (``run.stdout``): judge it by
    its first bytes; text that is not binary is read as a stdout log."""
    head = _head(path)
    if _looks_jsonl(head):
        return "jsonl"
    if _looks_csv(head):
        return "csv"
    if head and b"\x00" not in head:
        return "text"
    return None


def _skip_dir(name: str) -> bool:
    return name in SKIP_DIRS or (name.startswith(".") and name not in (".",))


def _is_checkpoint_meta(path: Path) -> bool:
    """``last.pt.json`` / ``last.json`` beside ``last.pt``: checkpoint metadata, not a config."""
    low = path.name.lower()
    if not low.endswith(".json"):
        return False
    base = path.name[: -len(".json")]
    if base.lower().endswith(CHECKPOINT_SUFFIXES) and (path.parent / base).exists():
        return True
    return any((path.parent / (base + s)).exists() and (base + s).lower() not in NOT_CHECKPOINTS
               for s in CHECKPOINT_SUFFIXES)


def is_apply_output(path: Path) -> bool:
    """``config.fixed.yaml`` beside ``config.yaml`` (``best.fixed.pt`` beside ``best.pt``): a patched
    copy ``trainfix apply`` wrote, not a file this run used (an output of apply never becomes an
    input of the run it came from)."""
    m = APPLY_OUTPUT.match(path.name)
    return bool(m) and (path.parent / (m.group("base") + m.group("ext"))).is_file()


def scan(root: Path) -> Inputs:
    """Walk ``root`` (a directory or a single file) and classify what it holds."""
    from trainfix.diagnostics.ingest.safe_read import file_problem

    inputs = Inputs(root=root)
    for path in _files(root):
        kind = classify(path)
        if kind is None and path == root:
            kind = _sniff_named_file(path)
        problem = file_problem(path) if kind is not None or path == root else None
        if kind is None and not problem:
            continue
        if problem:  # FIFOs, sockets, devices, links to them: never opened
            inputs.skipped.append({"path": str(path), "reason": problem})
            continue
        if not os.access(path, os.R_OK):
            inputs.skipped.append({"path": str(path), "reason": "not readable (permission denied)"})
            continue
        if kind in ("checkpoint", "config") and is_apply_output(path):
            inputs.skipped.append({"path": str(path), "reason": "a patched copy written by trainfix apply "
                                   "(its original is beside it): not part of this run"})
            continue
        if kind == "checkpoint":
            inputs.checkpoints.append(path)
        elif kind == "config":
            if _is_checkpoint_meta(path) or path.parent.name.lower() in ("checkpoints", "ckpt", "ckpts"):
                continue
            inputs.configs.append(path)
        else:
            inputs.logs.append((str(path), kind))
    return inputs


def _files(root: Path):
    """Every file below ``root`` (or ``root`` itself, a file or a FIFO/device named on the command
    line), in sorted order, one at a time."""
    if not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
        base = Path(dirpath)
        for f in sorted(filenames):
            yield base / f


# --- splitting into runs -----------------------------------------------------------------------------


def _dir_formats(path: Path) -> set[str]:
    """Log formats found below ``path`` (recursively)."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not _skip_dir(d)]
        for f in filenames:
            kind = classify(Path(dirpath) / f)
            if kind in LOG_FORMATS:
                found.add(kind)
    return found


def _direct_run(path: Path) -> bool:
    for entry in sorted(path.iterdir()):
        if not entry.is_file():
            continue
        low = entry.name.lower()
        if low in RUN_MARKERS:
            return True
        if low == "meta.yaml" and (path / "metrics").is_dir():
            return True
        if classify(entry) in LOG_FORMATS:
            return True
    return False


def find_runs(path: str | Path) -> list[Path]:
    """Split ``path`` into independent runs (see the module docstring for the rule)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if _direct_run(path):
        return [path]
    children = [c for c in sorted(path.iterdir()) if c.is_dir() and not _skip_dir(c.name)]
    with_logs = [(c, _dir_formats(c)) for c in children]
    with_logs = [(c, f) for c, f in with_logs if f]
    if not with_logs:
        return []
    if len(with_logs) == 1:
        sub = find_runs(with_logs[0][0])
        return sub if len(sub) > 1 else [path]
    names = [c.name.lower() for c, _ in with_logs]
    if all(n in PARTITION_NAMES for n in names) or all(CHECKPOINT_DIR.match(n) for n in names):
        return [path]
    if any(n in PART_NAMES for n in names):
        return [path]
    runs: list[Path] = []
    for c, _ in with_logs:
        if CHECKPOINT_DIR.match(c.name):
            continue  # checkpoint folders belong to their parent run
        runs.extend(find_runs(c) or [c])
    return runs or [path]
