"""Dataset factories: ``digits`` (real data, no download), ``synthetic`` (fast, generated) and
``image-folder`` (class subfolders of image files, the way people keep X-ray or photo datasets).

Each factory is ``(seed, **args) -> DataBundle``; samples are ``(input, target, index)`` so the loop
can hand each sample's dataset index to losses that keep per-sample state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from trainfix.errors import ConfigError
from trainfix.trainers.components.base import DataBundle


class IndexedTensors(torch.utils.data.Dataset):
    """In-memory inputs and targets; yields ``(input, target, index)``."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.inputs[i], self.targets[i], i


def _stratified_split(y: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-class shuffled split so every class keeps its share in validation."""
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(len(idx) * val_fraction))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def imbalance_counts(counts: Sequence[int], ratio: float, minority_classes: Sequence[int] | None) -> list[int]:
    """How many training samples each class keeps so that max/min count equals ``ratio``.

    Without ``minority_classes`` the classes shrink geometrically with their index (class 0 keeps
    all, the last class keeps 1/ratio), the usual long-tail construction.  With them, the listed
    classes keep 1/ratio of their samples and the others keep all.
    """
    n = len(counts)
    if ratio <= 1.0:
        return list(counts)
    top = min(counts)
    if minority_classes:
        keep = [top if c not in minority_classes else top / ratio for c in range(n)]
    else:
        keep = [top * ratio ** (-(c / max(n - 1, 1))) for c in range(n)]
    return [max(1, int(round(k))) for k in keep]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits images scaled to [0, 1] (N, 8, 8) float32 and labels (N,) int64.

    Reads the CSV that ships inside scikit-learn directly: importing ``sklearn`` costs seconds and
    ``load_digits`` would only read this same file.  Falls back to ``load_digits`` if the file moved.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        data = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        return (data[:, :-1] / 16.0).reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    raw = load_digits()
    return raw.images.astype(np.float32) / 16.0, raw.target.astype(np.int64)


def digits(
    seed: int,
    image_size: int = 16,
    val_fraction: float = 0.25,
    imbalance_ratio: float = 1.0,
    minority_classes: list[int] | None = None,
    sampler: str = "uniform",
    noise: float = 0.0,
    label_noise: float = 0.0,
) -> DataBundle:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), upsampled bilinearly.

    The split is stratified and fixed by ``seed``; inputs are normalised with the training mean/std.
    ``imbalance_ratio`` > 1 subsamples training classes (see :func:`imbalance_counts`; validation
    stays balanced so per-class accuracy is comparable).  ``sampler: balanced`` asks the loop for a
    class-balanced ``WeightedRandomSampler``.  ``noise`` adds Gaussian noise of that std (in
    normalised units) to training inputs, ``label_noise`` relabels that fraction of training samples
    at random; both are drawn once from ``seed`` so runs are reproducible.
    """
    if image_size not in (8, 16, 32):
        raise ConfigError(f"data.image_size: {image_size} is not one of 8, 16, 32", "use 8, 16 or 32")
    if sampler not in ("uniform", "balanced"):
        raise ConfigError(f"data.sampler: {sampler!r} is not uniform|balanced", "use 'uniform' or 'balanced'")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: {val_fraction} is not in (0, 1)", "use e.g. 0.25")
    x, y = load_digits_arrays()
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _stratified_split(y, val_fraction, rng)

    counts = [int((y[train_idx] == c).sum()) for c in range(10)]
    if imbalance_ratio > 1.0:
        keep = imbalance_counts(counts, imbalance_ratio, minority_classes)
        kept = [rng.permutation(train_idx[y[train_idx] == c])[: keep[c]] for c in range(10)]
        train_idx = np.sort(np.concatenate(kept))

    def images(idx: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x[idx]).unsqueeze(1)
        if image_size != 8:
            t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False)
        return t

    xtr, xva = images(train_idx), images(val_idx)
    mean, std = xtr.mean(), xtr.std()
    xtr, xva = (xtr - mean) / std, (xva - mean) / std
    ytr, yva = torch.from_numpy(y[train_idx]), torch.from_numpy(y[val_idx])
    gen = torch.Generator().manual_seed(seed)
    if noise > 0:
        xtr = xtr + noise * torch.randn(xtr.shape, generator=gen)
    if label_noise > 0:
        flip = torch.rand(len(ytr), generator=gen) < label_noise
        ytr = torch.where(flip, torch.randint(0, 10, ytr.shape, generator=gen), ytr)

    train_counts = [int((ytr == c).sum()) for c in range(10)]
    return DataBundle(
        train=IndexedTensors(xtr.contiguous(), ytr),
        val=IndexedTensors(xva.contiguous(), yva),
        num_classes=10,
        class_names=[str(c) for c in range(10)],
        task="multiclass",
        input_shape=(1, image_size, image_size),
        train_targets=ytr.tolist(),
        info={
            "dataset": "digits",
            "train_size": len(ytr),
            "val_size": len(yva),
            "train_class_counts": train_counts,
            "val_class_counts": [int((yva == c).sum()) for c in range(10)],
            "imbalance_ratio": max(train_counts) / max(1, min(train_counts)),
            "sampler": sampler,
        },
    )


def synthetic(
    seed: int,
    num_classes: int = 4,
    num_samples: int = 1024,
    dim: int = 32,
    image_size: int | None = None,
    separation: float = 4.0,
    val_fraction: float = 0.25,
    sampler: str = "uniform",
) -> DataBundle:
    """Gaussian class clusters (unit noise, centres ``separation`` from the origin in random
    directions): nearly separable at the default 4.0, harder below 2; trains in seconds.

    Inputs are vectors of ``dim`` features, or ``1 x image_size x image_size`` images when
    ``image_size`` is given (then ``dim`` is ignored) so the CNN can be tested on it too.
    """
    gen = torch.Generator().manual_seed(seed)
    features = image_size * image_size if image_size else dim
    centers = torch.randn(num_classes, features, generator=gen)
    centers = separation * centers / centers.norm(dim=1, keepdim=True)
    y = torch.arange(num_samples) % num_classes
    y = y[torch.randperm(num_samples, generator=gen)]
    x = centers[y] + torch.randn(num_samples, features, generator=gen)
    if image_size:
        x = x.view(num_samples, 1, image_size, image_size)
    n_val = int(num_samples * val_fraction)
    return DataBundle(
        train=IndexedTensors(x[n_val:].contiguous(), y[n_val:].contiguous()),
        val=IndexedTensors(x[:n_val].contiguous(), y[:n_val].contiguous()),
        num_classes=num_classes,
        class_names=[str(c) for c in range(num_classes)],
        task="multiclass",
        input_shape=tuple(x.shape[1:]),
        train_targets=y[n_val:].tolist(),
        info={"dataset": "synthetic", "train_size": num_samples - n_val, "val_size": n_val, "sampler": sampler},
    )


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageFiles(torch.utils.data.Dataset):
    """Image files read on access (PIL), resized, scaled to [-1, 1]; yields ``(input, target, index)``."""

    def __init__(self, files: list[Path], targets: list[int], image_size: int, channels: int):
        self.files, self.targets = files, targets
        self.image_size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.files[i]) as img:
            img = img.convert("L" if self.channels == 1 else "RGB").resize(
                (self.image_size, self.image_size), Image.BILINEAR
            )
            arr = np.asarray(img, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr)
        t = t.unsqueeze(0) if self.channels == 1 else t.permute(2, 0, 1)
        return (t - 0.5) / 0.5, torch.tensor(self.targets[i]), i


def _scan(root: Path, classes: list[str] | None) -> tuple[list[Path], list[int], list[str]]:
    names = classes or sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, targets = [], []
    for c, name in enumerate(names):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                targets.append(c)
    return files, targets, names


def image_folder(
    seed: int,
    root: str,
    image_size: int = 64,
    channels: int = 1,
    val_fraction: float = 0.2,
    sampler: str = "uniform",
) -> DataBundle:
    """Class subfolders of images: ``root/<class>/*.png``.

    If ``root`` holds ``train/`` and ``val/`` folders, each with the same class subfolders, those
    are the split; otherwise a stratified ``val_fraction`` split fixed by ``seed``.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ConfigError(f"data.root: {root!r} is not a directory", "point it at a folder of class subfolders")
    if (base / "train").is_dir() and (base / "val").is_dir():
        tr_files, tr_y, names = _scan(base / "train", None)
        va_files, va_y, _ = _scan(base / "val", names)
    else:
        files, ys, names = _scan(base, None)
        y = np.asarray(ys)
        if len(files) == 0:
            raise ConfigError(f"data.root: no images under {root!r}", f"expected <class>/*{'|*'.join(IMAGE_EXTENSIONS)}")
        tr, va = _stratified_split(y, val_fraction, np.random.default_rng(seed))
        tr_files, tr_y = [files[i] for i in tr], [ys[i] for i in tr]
        va_files, va_y = [files[i] for i in va], [ys[i] for i in va]
    if not tr_files or not va_files or len(names) < 2:
        raise ConfigError(
            f"data.root: {root!r} needs at least two class folders with images in train and val",
            "layout: root/<class>/<image>, or root/train/<class>/... and root/val/<class>/...",
        )
    return DataBundle(
        train=ImageFiles(tr_files, tr_y, image_size, channels),
        val=ImageFiles(va_files, va_y, image_size, channels),
        num_classes=len(names),
        class_names=names,
        task="multiclass",
        input_shape=(channels, image_size, image_size),
        train_targets=list(tr_y),
        info={
            "dataset": "image-folder",
            "root": str(base),
            "train_size": len(tr_files),
            "val_size": len(va_files),
            "train_class_counts": [tr_y.count(c) for c in range(len(names))],
            "sampler": sampler,
        },
    )
