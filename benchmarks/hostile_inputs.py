"""Hostile run directories, per class: cases tried, failures, slowest case, peak memory.

    python benchmarks/hostile_inputs.py            # every class, the GB-size files included
    python benchmarks/hostile_inputs.py --small    # the same cases at a size CI could afford
    python benchmarks/hostile_inputs.py --only large --case text,cr   # some of the large-file cases

Every case runs in a fresh process (``python -m trainfix ...`` or a short ``read_run`` script) under a
timeout, so a hang is a failure, not a stuck benchmark; peak memory is that process's max RSS
(``os.wait4``).  A case fails when it hangs, crashes, ends in an internal error, prints something that
is not one JSON document under ``--format json``, runs code a config names, or writes over an input.

For the large-file cases the table also shows what the data needs: what ``read_run`` returns (the
bytes of the scalar table, and of the inputs record: one entry per file read, per restart, per
dropped duplicate), plus the budgeted read buffers (1 MiB blocks, 1 MiB lines).  Points that do
not survive assembly (a restarted log's abandoned steps, a tag's copies in other files) are not
needed: a reader may drop them as it reads.  A case fails its memory check
when the process's peak memory, less that of the same process reading a one-line run (the imports),
is above 2x what the data needs plus 16 MiB (code that only some inputs import: pandas' CSV parser,
the TensorBoard decoder).

Classes (the cases are our own, built here from scratch):
  code execution    a config.yaml naming a trap callable for data/model/loss + a checkpoint; every command
  special files     FIFOs and links to /dev/zero, /dev/urandom named as logs, configs, checkpoints, settings
                    (settings and dataset.json are side files: read or quietly absent, never reported)
  one bad file      TensorBoard step past 2**64, 100,000-deep JSON, 5,000-digit number, alias bomb,
                    tensor shape with 100,000 huge dims, a deep JSON line; each beside a valid log
  large files       2 GB sparse events file, 1 GB garbage events, 500 MB text log, 300 MB \\r-only
                    progress log, CSV with 100,000 columns, 50,000 tiny log files
  outputs           -o/--junit over a file the command read (also through a link)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from _eventgen import pb_field, scalar_event, tfrecord, varint

PY = sys.executable
TIMEOUT = 300


@dataclass
class Result:
    case: str
    ok: bool
    seconds: float
    peak_mb: float
    note: str = ""
    needs_mb: float | None = None


@dataclass
class Klass:
    name: str
    results: list[Result] = field(default_factory=list)


def _hwm_mb(pid: int) -> float:
    """A live process's peak resident memory (``VmHWM``), MiB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_proc(args: list[str], *, env: dict | None = None, timeout: float = TIMEOUT) -> tuple[int | None, str, str, float, float]:
    """(exit code or None on timeout, stdout, stderr, seconds, peak RSS MiB) of one child process.

    The peak is the child's own ``VmHWM``, polled while it runs: its ``ru_maxrss`` would not do,
    since Linux carries the parent's peak over into a forked child across ``exec`` (this script
    imports torch, so every child would start at the parent's ~230 MiB).  A child that reports its
    own peak (the ``read_run`` script) is measured exactly."""
    t0 = time.monotonic()
    hwm = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = t0 + timeout
        status = rusage = None
        while True:
            hwm = max(hwm, _hwm_mb(proc.pid))
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                status = None
                break
            time.sleep(0.02)
        proc.returncode = 0  # reaped by wait4
        secs = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        text = out.read().decode("utf-8", "replace")
        for line in text.splitlines()[-1:]:
            if line.startswith('{"points"'):
                hwm = json.loads(line).get("peak_mb", hwm)
        return code, text, err.read().decode("utf-8", "replace"), secs, hwm


def cli(*args: str, timeout: float = TIMEOUT, env: dict | None = None):
    return run_proc([PY, "-m", "trainfix", *args], timeout=timeout, env=env)


READ = textwrap.dedent("""
    import json, sys
    from trainfix.diagnostics.ingest import read_run
    run = read_run(sys.argv[1])
    table = int(run.scalars.memory_usage(deep=True).sum())

    def size(obj, seen=set()):  # what the inputs record holds (a list of 50,000 files, say)
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
        n = sys.getsizeof(obj)
        if isinstance(obj, dict):
            n += sum(size(k) + size(v) for k, v in obj.items())
        elif isinstance(obj, (list, tuple, set)):
            n += sum(size(v) for v in obj)
        return n

    record = size(run.inputs)
    peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(json.dumps({"points": len(run.scalars), "table_bytes": table, "record_bytes": record,
                      "skipped": run.inputs["skipped"],
                      "peak_mb": peak}))
""")


def read_case(run: Path, timeout: float = TIMEOUT):
    return run_proc([PY, "-c", READ, str(run)], timeout=timeout)


def metrics_lines(run: Path, n: int = 30) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "metrics.jsonl", "w") as fh:
        for s in range(1, n + 1):
            fh.write(json.dumps({"step": s, "train/loss": 2.0 / s, "val/acc": 0.5 + s / 200}) + "\n")


def judge(code, out, err, *, json_out: bool = False) -> tuple[bool, str]:
    if code is None:
        return False, "timed out"
    text = out + err
    if "internal error" in text or "Traceback" in text:
        return False, (text.strip().splitlines() or ["?"])[-1][:120]
    if code not in (0, 1, 2):
        return False, f"exit {code}"
    if json_out:
        try:
            json.loads(out)
        except ValueError:
            return False, "stdout is not one JSON document"
    return True, ""


# --- TensorBoard records ----------------------------------------------------------------------------


# --- classes -----------------------------------------------------------------------------------------


def code_execution(root: Path) -> Klass:
    k = Klass("code execution")
    trap_dir = root / "site"
    trap_dir.mkdir()
    (trap_dir / "bench_trap.py").write_text(
        "import pathlib\nH = pathlib.Path(__file__).with_name('fired')\nH.with_suffix('.imported').touch()\n"
        "def evil(*a, **k):\n    H.with_suffix('.called').touch()\n")
    env = {"PYTHONPATH": str(trap_dir) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    variants = {
        "data": "data: {_component_: bench_trap:evil}\nmodel: {name: mlp}\n",
        "loss": "data: {name: synthetic}\nmodel: {name: mlp}\nloss: {_component_: bench_trap.evil}\n",
        "model": "data: {name: synthetic}\nmodel: {_component_: bench_trap:evil}\n",
        "stage override": "data: {name: synthetic}\nmodel: {name: mlp}\nstages:\n  - {name: a, epochs: 1, overrides: {data._component_: 'bench_trap:evil'}}\n",
    }
    import torch

    for label, body in variants.items():
        run = root / f"exec-{label.replace(' ', '-')}"
        metrics_lines(run)
        (run / "checkpoints").mkdir()
        (run / "config.yaml").write_text("run: {name: x}\ntraining: {epochs: 1}\noptimizer: {lr: 0.001}\n" + body)
        torch.save({"model": torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict()}, run / "checkpoints" / "last.pt")
        commands = [["diagnose", str(run), "--format", "json"], ["check", str(run), "--format", "json"],
                    ["compare", str(run), str(run), "--format", "json"], ["metrics", str(run)],
                    ["apply", str(run), "--dry-run"], ["apply", str(run), "--fix", "lower-lr", "--dry-run"],
                    ["inspect", str(run / "checkpoints" / "last.pt"), "--model", str(run / "config.yaml")],
                    ["train", "--config", str(run / "config.yaml"), "--validate"]]
        for args in commands:
            code, out, err, secs, peak = cli(*args, env=env)
            ok, note = judge(code, out, err, json_out="json" in args)
            fired = sorted(p.suffix for p in trap_dir.glob("fired.*"))
            if fired:
                ok, note = False, f"trap {' '.join(fired)}"
                for p in trap_dir.glob("fired.*"):
                    p.unlink()
            k.results.append(Result(f"{label}: {args[0]} {args[-1] if args[-1].startswith('--') else ''}".strip(), ok, secs, peak, note))
    return k


def special_files(root: Path) -> Klass:
    k = Klass("special files")
    names = ["metrics.jsonl", "train.log", "config.yaml", "events.out.tfevents.1.h", "last.pt", "trainfix.toml",
             "hparams.yaml", "dataset.json", "history.json", "results.txt", "metrics.csv"]
    for kind in ("fifo", "/dev/zero", "/dev/urandom"):
        for name in names:
            run = root / f"special-{kind.strip('/').replace('/', '-')}-{name}"
            metrics_lines(run / "ok")
            target = run / name
            if kind == "fifo":
                os.mkfifo(target)
            else:
                target.symlink_to(kind)
            code, out, err, secs, peak = cli("diagnose", str(run), "--format", "json", timeout=60)
            ok, note = judge(code, out, err, json_out=True)
            if ok:
                doc = json.loads(out)
                skipped = doc["runs"][0]["inputs"].get("skipped", []) if "runs" in doc else []
                if not any(s["path"].endswith(name) for s in skipped) and name not in ("trainfix.toml", "dataset.json"):
                    ok, note = False, "not reported as skipped"
            k.results.append(Result(f"{kind} as {name}", ok, secs, peak, note))
    return k


def one_bad_file(root: Path) -> Klass:
    k = Klass("one bad file")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    dims = b"".join(pb_field(1, 2, pb_field(1, 0, varint(2**62 + 1))) for _ in range(100_000))
    tensor = pb_field(1, 0, varint(1)) + pb_field(2, 2, dims) + pb_field(5, 2, struct.pack("<f", 1.0))
    big_tensor = pb_field(1, 1, struct.pack("<d", 1.0)) + pb_field(2, 0, varint(3)) + pb_field(5, 2, pb_field(1, 2, pb_field(1, 2, b"t") + pb_field(8, 2, tensor)))
    cases: dict[str, dict[str, bytes]] = {
        "TB step > 2**63 (10-byte varint)": {"tb/events.out.tfevents.1.h": b"".join(
            tfrecord(scalar_event(varint(s), "tb/loss", 1.0 / s)) for s in range(1, 50))
            + b"".join(tfrecord(scalar_event(varint(2**63 + i * 2**60), "tb/loss", 1.0)) for i in range(1, 20))},
        "config.json 100,000 deep": {"config.json": b"[" * 100_000 + b"]" * 100_000},
        "args.json 5,000-digit int": {"args.json": b'{"seed": ' + b"7" * 5000 + b"}"},
        "hparams.yaml alias bomb": {"hparams.yaml": bomb.encode()},
        "tensor shape, 100,000 huge dims (1.2 MB)": {"tb/events.out.tfevents.2.h": tfrecord(scalar_event(varint(1), "x", 1.0)) + tfrecord(big_tensor)},
        "metrics2.jsonl line 100,000 deep": {"metrics2.jsonl": b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n"},
        "trainer_state.json 100,000 deep": {"trainer_state.json": b'{"log_history": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    }
    for label, files in cases.items():
        run = root / f"bad-{len(k.results)}"
        metrics_lines(run)
        for rel, data in files.items():
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_bytes(data)
        code, out, err, secs, peak = cli("diagnose", str(run), "--format", "json", timeout=120)
        ok, note = judge(code, out, err, json_out=True)
        if ok:
            doc = json.loads(out)
            ok = "runs" in doc and "train/loss" in doc["runs"][0]["inputs"]["tags"]
            skipped = doc["runs"][0]["inputs"].get("skipped", []) if ok else []
            note = "; ".join(s["reason"][:60] for s in skipped) or "read (no skip)"
        k.results.append(Result(label, ok, secs, peak, note))
        if "config" in label or "args" in label or "hparams" in label:
            path = run / next(iter(files))
            code, out, err, secs, peak = cli("apply", str(path), "--fix", "lower-lr", "--dry-run", timeout=120)
            ok, note = judge(code, out, err)
            ok = ok and code == 2
            k.results.append(Result(f"apply on {label}", ok, secs, peak, (err.strip().splitlines() or [""])[0][:70]))
    return k


def large_files(root: Path, small: bool, cases: str | None = None) -> Klass:
    k = Klass("large files")
    want = (lambda key: True) if not cases else (lambda key: key in cases.split(","))
    scale = 0.01 if small else 1.0
    _, _, _, _, base_peak = read_case(_empty_run(root))

    def measure(label: str, run: Path, expect_points: bool = True) -> None:
        code, out, err, secs, peak = read_case(run)
        ok, note = judge(code, out, err)
        needs = None
        if ok and code == 0:
            info = json.loads(out)
            # the result: the table and the inputs record, plus a 1 MiB block and a 1 MiB line
            needs = (info["table_bytes"] + info["record_bytes"]) / 2**20 + 2.0
            over, limit = peak - base_peak, 2 * needs + 16
            note = (f"{info['points']:,} points; {over:.0f} MiB over the baseline (limit {limit:.0f})"
                    + (f"; skipped: {info['skipped'][0]['reason'][:50]}" if info["skipped"] else ""))
            ok = over <= limit
        elif code == 2 and not expect_points:
            ok, note = True, (err.strip().splitlines() or [""])[0][:70]
        k.results.append(Result(label, ok, secs, peak, note, needs))

    if want("sparse"):
        _sparse(root, scale, measure)
    if want("garbage"):
        _garbage(root, scale, measure)
    if want("text"):
        _text(root, scale, measure)
    if want("cr"):
        _cr(root, scale, measure)
    if want("columns"):
        _columns(root, small, measure)
    if want("many"):
        _many(root, small, measure)
    return k


def _sparse(root, scale, measure):  # a 2 GB sparse events file: all zeros, no disk used
    run = root / "large-sparse"
    metrics_lines(run)
    with open(run / "events.out.tfevents.1.h", "wb") as fh:
        fh.truncate(int(2 * 2**30 * scale))
    measure(f"{2 * scale:g} GB sparse events file", run)


def _garbage(root, scale, measure):
    run = root / "large-garbage"
    metrics_lines(run)
    with open(run / "events.out.tfevents.1.h", "wb") as fh:
        left = int(2**30 * scale)
        rnd = os.urandom(1 << 20)
        while left > 0:
            fh.write(rnd[: min(left, len(rnd))])
            rnd = rnd[1:] + rnd[:1]
            left -= 1 << 20
    measure(f"{1 * scale:g} GB garbage events file", run)


def _text(root, scale, measure):
    run = root / "large-text"
    run.mkdir()
    chunk = "".join(f"Epoch {e}/99: Train Loss: {1 / (e + 1):.4f} | Val Acc: {50 + e % 40:.2f}%\n"
                    f"[W] some warning about data loader worker {e} that goes on for a while\n" for e in range(1000)).encode()
    with open(run / "train.log", "wb") as fh:
        for _ in range(int(500 * 2**20 * scale / len(chunk))):
            fh.write(chunk)
    measure(f"{500 * scale:g} MB text log", run)


def _cr(root, scale, measure):  # a progress log with only \r breaks
    run = root / "large-cr"
    run.mkdir()
    bar = b"Epoch 1/1:  45%|#########           | 450/1000 [00:10<00:12, 44.2it/s]\r"
    chunk = b"".join(bar if i % 100 else b"step %d loss: 0.4100\r" % i for i in range(10_000))
    with open(run / "train.log", "wb") as fh:
        for _ in range(int(300 * 2**20 * scale / len(chunk))):
            fh.write(chunk)
    measure(f"{300 * scale:g} MB \\r-only progress log", run)


def _columns(root, small, measure):
    run = root / "large-columns"
    metrics_lines(run)
    ncol = int(100_000 * (0.1 if small else 1))
    header = "step," + ",".join(f"m{i}" for i in range(ncol))
    rows = [f"{s}," + ",".join("1" if (i + s) % 7 else "" for i in range(ncol)) for s in range(2)]
    (run / "wide.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    measure(f"CSV with {ncol:,} columns", run)


def _many(root, small, measure):
    run = root / "large-many"
    run.mkdir()
    nfiles = int(50_000 * (0.02 if small else 1))
    for i in range(nfiles):
        sub = run / f"d{i // 1000}"
        sub.mkdir(exist_ok=True)
        (sub / f"log{i}.jsonl").write_text(f'{{"step": 1, "loss{i % 50}": 0.5}}\n')
    measure(f"{nfiles:,} tiny log files", run)


def _empty_run(root: Path) -> Path:
    run = root / "baseline"
    metrics_lines(run, 1)
    return run


def outputs(root: Path) -> Klass:
    k = Klass("outputs")
    run = root / "out-run"
    metrics_lines(run)
    (run / "dataset.json").write_text('{"train": {"size": 10}}')
    (run / "hparams.yaml").write_text("lr: 0.001\n")
    (run / "link").symlink_to(run / "metrics.jsonl")
    cases = [["diagnose", str(run), "-o", str(run / "metrics.jsonl")],
             ["diagnose", str(run), "--format", "json", "-o", str(run / "hparams.yaml")],
             ["check", str(run), "--junit", str(run / "dataset.json")],
             ["check", str(run), "--junit", str(run / "link")],
             ["apply", str(run / "hparams.yaml"), "--fix", "lower-lr", "-o", str(run / "metrics.jsonl")]]
    for args in cases:
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        code, out, err, secs, peak = cli(*args)
        after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        ok = code == 2 and before == after
        k.results.append(Result(f"{args[0]} {args[-2]} {Path(args[-1]).name}", ok, secs, peak,
                                "" if ok else f"exit {code}; changed: {before != after}"))
    return k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="small instances of the large-file cases")
    ap.add_argument("--only", help="one class: exec, special, bad, large, outputs")
    ap.add_argument("--case", help="large files only: some of sparse,garbage,text,cr,columns,many (comma-separated)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trainfix-hostile-"))
    builders = {"exec": code_execution, "special": special_files, "bad": one_bad_file,
                "large": lambda r: large_files(r, a.small, a.case), "outputs": outputs}
    try:
        classes = [fn(root) for key, fn in builders.items() if not a.only or a.only == key]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'class':<16} {'cases':>5} {'fail':>4}  {'slowest case':<44} {'s':>6} {'peak MiB':>8}")
    for c in classes:
        slow = max(c.results, key=lambda r: r.seconds)
        peak = max(r.peak_mb for r in c.results)
        print(f"{c.name:<16} {len(c.results):>5} {sum(not r.ok for r in c.results):>4}  {slow.case[:44]:<44} "
              f"{slow.seconds:>6.1f} {peak:>8.0f}")
    for c in classes:
        print(f"\n{c.name}:")
        for r in c.results:
            needs = f"  needs ~{r.needs_mb:.0f} MiB" if r.needs_mb is not None else ""
            print(f"  {'ok  ' if r.ok else 'FAIL'} {r.case[:52]:<52} {r.seconds:6.1f} s {r.peak_mb:6.0f} MiB{needs}  {r.note[:110]}")


if __name__ == "__main__":
    main()
