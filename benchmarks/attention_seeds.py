"""Seeds 000 and 004 pictured: attention quality before and after each fix, from ``trainfix attention``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/attention_seeds.py [--out DIR]     # about 2 minutes on one core

- Seed 000: ``examples/sparsity-buggy.yaml`` (entropy / 1000 x 0.001: the sparsity term never acts)
  and ``examples/sparsity-fixed.yaml`` (L1 on the un-normalised map), trained, then
  ``trainfix attention BUGGY --against FIXED``.
- Seed 004: ``examples/gradcam-keys.yaml`` trained; its best weights re-saved with ``module.`` keys
  (a DataParallel save) and pictured as loaded with ``strict=False``; then repaired with
  ``trainfix apply --fix checkpoint-keys`` and pictured again (``--against``).

Prints, per model, Grad-CAM's normalised entropy (1 = diffuse), Hoyer sparsity (1 = one pixel),
pointing game and energy-in-box on the digit's known box (chance: 0.25), Grad-CAM / Guided
Backprop agreement, the accuracy on the measured samples and the share of weights loaded; the
PNGs are under DIR/seed000 and DIR/seed004.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
KEYS = ("attn/gradcam_entropy", "attn/gradcam_hoyer", "attn/pointing_game", "attn/energy_in_box",
        "attn/gradcam_guided_agreement", "attn/accuracy", "attn/loaded_fraction")


def cli(*args) -> None:
    from typer.testing import CliRunner

    from trainfix.cli.app import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    if r.exit_code != 0:
        raise SystemExit(f"trainfix {' '.join(map(str, args))} failed:\n{r.output}")


def table(title: str, doc_path: Path) -> None:
    doc = json.loads(doc_path.read_text())
    print(f"\n{title}  (layer {doc['layer']}; {len(doc['models'][0]['samples'])} validation samples)")
    print("model | " + " | ".join(k.split("/", 1)[1] for k in KEYS))
    print(" | ".join("---" for _ in range(len(KEYS) + 1)))
    for m in doc["models"]:
        print(m["label"] + " | " + " | ".join(f"{m['summary'].get(k, float('nan')):.3f}" for k in KEYS))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    from trainfix.trainers.loop import train

    torch.set_num_threads(1)
    work = args.out or Path(tempfile.mkdtemp(prefix="trainfix-attention-"))
    buggy = train(EXAMPLES / "sparsity-buggy.yaml", out_dir=work / "sparsity-buggy").out_dir
    fixed = train(EXAMPLES / "sparsity-fixed.yaml", out_dir=work / "sparsity-fixed").out_dir
    cli("attention", buggy, "--against", fixed, "-o", work / "seed000")
    table("seed 000: entropy/1000 x 0.001 (buggy) vs L1 on the un-normalised map (fixed)", work / "seed000" / "attention.json")

    run = train(EXAMPLES / "gradcam-keys.yaml", out_dir=work / "gradcam-keys").out_dir
    user = work / "user"
    user.mkdir(exist_ok=True)
    shutil.copy(run / "config.yaml", user / "config.yaml")
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    torch.save({"model_state_dict": {"module." + k: v for k, v in state.items()}}, user / "best_model.pth")
    cli("apply", user / "best_model.pth", "--fix", "checkpoint-keys")
    cli("attention", user / "best_model.pth", "--against", user / "best_model.fixed.pth", "-o", work / "seed004")
    table("seed 004: module. keys loaded with strict=False vs after apply --fix checkpoint-keys",
          work / "seed004" / "attention.json")
    print(f"\npictures: {work / 'seed000'}/, {work / 'seed004'}/ (overview.png, samples/sample_XXX.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
