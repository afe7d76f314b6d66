"""PNG pictures of attribution maps (matplotlib, Agg backend: no display needed).

One figure per sample: a row per model (two with ``--against``), columns *input* (the object's box
drawn when known), *Grad-CAM*, *Guided Backprop*, *Integrated Gradients* and *overlay* (Grad-CAM
over the input).  Every map is scaled to its own maximum with the same colour map, so the picture
shows the map's *shape*: a focused map is one bright spot on black, a diffuse one is bright all
over, a blank one is black with "BLANK" in its title.  Titles carry the sample's numbers (class
and confidence, entropy H, Hoyer sparsity S, pointing-game hit, energy in box E).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

CMAP = "inferno"


def _norm(m: np.ndarray) -> np.ndarray:
    top = float(np.nanmax(m)) if m.size else 0.0
    return m / top if top > 1e-12 else np.zeros_like(m)


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _title(kind: str, row: dict, prefix: str) -> str:
    if row.get(f"{prefix}blank"):
        return f"{kind}: BLANK"
    parts = [f"H {_fmt(row.get(prefix + 'entropy'))}", f"S {_fmt(row.get(prefix + 'hoyer'))}"]
    hit = row.get("pointing_game" if prefix == "gradcam_" else prefix + "pointing_game")
    box = row.get("energy_in_box" if prefix == "gradcam_" else prefix + "energy_in_box")
    line2 = []
    if hit is not None:
        line2.append("hit" if hit >= 0.5 else "miss")
    if box is not None:
        line2.append(f"E {box:.2f}")
    return f"{kind}\n" + " ".join(parts) + ("\n" + " ".join(line2) if line2 else "")


def sample_figure(path: Path, rows: Sequence[dict], box: Sequence[int] | None = None) -> None:
    """Write one sample's grid.  ``rows``: per model ``{"label", "input" [H,W], "gradcam", "guided",
    "ig" (or None), "record" (that sample's metrics), "class", "true"}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cols = 5
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.3 * cols, 2.9 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        rec = row["record"]
        image = row["input"]
        maps = [("Grad-CAM", row["gradcam"], "gradcam_"), ("Guided Backprop", row["guided"], "guided_"),
                ("Integrated Gradients", row["ig"], "ig_")]
        ax = axes[r][0]
        ax.imshow(image, cmap="gray")
        conf = rec.get("confidence")
        ax.set_title(f"{row['label']}\ntrue {row['true']} -> pred {row['class']}"
                     + (f" ({conf:.2f})" if conf is not None else ""), fontsize=8)
        if box is not None:
            y0, x0, y1, x1 = box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", lw=1.2))
        for c, (kind, m, prefix) in enumerate(maps, start=1):
            ax = axes[r][c]
            if m is None:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center", fontsize=8)
            else:
                rec_for = dict(rec, gradcam_blank=bool(rec.get("gradcam_blank")))
                ax.imshow(_norm(m), cmap=CMAP, vmin=0, vmax=1)
                ax.set_title(_title(kind, rec_for, prefix), fontsize=8)
        ax = axes[r][4]
        ax.imshow(image, cmap="gray")
        ax.imshow(_norm(row["gradcam"]), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title("overlay (Grad-CAM)", fontsize=8)
        if box is not None:
            y0, x0, y1, x1 = box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", lw=1.2))
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def overview_figure(path: Path, columns: Sequence[dict]) -> None:
    """All pictured samples on one page: per model a row of Grad-CAM overlays with their numbers.
    ``columns``: per model ``{"label", "inputs" [N,H,W], "gradcam" [N,H,W], "records", "boxes"}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(columns[0]["inputs"])
    fig, axes = plt.subplots(len(columns), n, figsize=(1.7 * n, 2.0 * len(columns) + 0.4), squeeze=False)
    for r, col in enumerate(columns):
        for i in range(n):
            ax = axes[r][i]
            ax.imshow(col["inputs"][i], cmap="gray")
            ax.imshow(_norm(col["gradcam"][i]), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            rec = col["records"][i]
            ax.set_title(("BLANK" if rec.get("gradcam_blank") else
                          f"H {_fmt(rec.get('gradcam_entropy'))} S {_fmt(rec.get('gradcam_hoyer'))}"), fontsize=7)
            if col.get("boxes") is not None:
                y0, x0, y1, x1 = col["boxes"][i]
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", lw=1))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(col["label"], fontsize=8)
    fig.suptitle("Grad-CAM over the input (H entropy, S Hoyer sparsity; green: the object's box)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig: Any, path: Path) -> None:
    """Atomic: through the one writer (:mod:`trainfix.outputs`)."""
    from trainfix.outputs import write_with

    write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), parents=True)
