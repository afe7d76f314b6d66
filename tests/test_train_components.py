"""Built-in components: digits/synthetic/image-folder datasets, CNN/MLP, CE/BCE losses, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainfix.errors import ConfigError
from trainfix.trainers.components import registry
from trainfix.trainers.components.base import Batch
from trainfix.trainers.components.datasets import digits, image_folder, imbalance_counts, synthetic
from trainfix.trainers.components.losses import bce, cross_entropy
from trainfix.trainers.components.models import cnn, mlp


def test_digits_split_is_stratified_deterministic_and_normalised():
    a, b, c = digits(0), digits(0), digits(1)
    assert len(a.train) + len(a.val) == 1797 and a.input_shape == (1, 16, 16)
    assert torch.equal(a.train.inputs, b.train.inputs) and not torch.equal(a.train.inputs[:50], c.train.inputs[:50])
    counts = np.asarray(a.info["val_class_counts"])
    assert counts.min() >= 43 and counts.max() <= 47
    assert abs(float(a.train.inputs.mean())) < 1e-4 and abs(float(a.train.inputs.std()) - 1) < 1e-3
    x, y, i = a.train[5]
    assert x.shape == (1, 16, 16) and i == 5 and int(y) == a.train_targets[5]
    assert digits(0, image_size=8).train.inputs.shape[-1] == 8


def test_digits_imbalance_reaches_the_ratio_and_keeps_validation_balanced():
    bundle = digits(0, imbalance_ratio=10.0)
    counts = bundle.info["train_class_counts"]
    assert max(counts) / min(counts) == pytest.approx(10.0, rel=0.1)
    assert counts == sorted(counts, reverse=True)
    assert bundle.info["val_class_counts"] == digits(0).info["val_class_counts"]
    minority = digits(0, imbalance_ratio=5.0, minority_classes=[3, 7]).info["train_class_counts"]
    assert minority[3] < minority[0] / 4 and minority[7] < minority[0] / 4 and minority[1] >= minority[0] - 2


def test_imbalance_counts_geometric():
    assert imbalance_counts([100] * 3, 4.0, None) == [100, 50, 25]
    assert imbalance_counts([100] * 3, 1.0, None) == [100, 100, 100]


def test_digits_noise_options_change_training_inputs_only():
    clean, noisy = digits(0), digits(0, noise=0.5, label_noise=0.2)
    assert not torch.equal(clean.train.inputs, noisy.train.inputs)
    assert torch.equal(clean.val.inputs, noisy.val.inputs)
    flipped = (clean.train.targets != noisy.train.targets).float().mean()
    assert 0.1 < flipped < 0.3


def test_digits_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="image_size"):
        digits(0, image_size=12)
    with pytest.raises(ConfigError, match="sampler"):
        digits(0, sampler="weighted")


def test_synthetic_vectors_and_images():
    v = synthetic(0, num_classes=3, num_samples=90, dim=5)
    assert v.input_shape == (5,) and len(v.train) + len(v.val) == 90 and v.num_classes == 3
    img = synthetic(0, image_size=8)
    assert img.input_shape == (1, 8, 8)


def test_image_folder_reads_class_subfolders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("normal", "pneumonia"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (20, 24), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "normal" / "notes.txt").write_text("not an image")
    bundle = image_folder(0, root=str(tmp_path), image_size=16, val_fraction=0.4)
    assert bundle.class_names == ["normal", "pneumonia"]
    assert len(bundle.train) == 6 and len(bundle.val) == 4
    x, y, i = bundle.train[0]
    assert x.shape == (1, 16, 16) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    with pytest.raises(ConfigError, match="not a directory"):
        image_folder(0, root=str(tmp_path / "nope"))


def test_models_size_themselves_from_the_bundle():
    img, vec = digits(0, image_size=8), synthetic(0, dim=7, num_classes=5)
    assert cnn(img, width=4, depth=2)(img.train.inputs[:3]).shape == (3, 10)
    assert mlp(vec, hidden=[8, 8])(vec.train.inputs[:3]).shape == (3, 5)
    with pytest.raises(ConfigError, match="needs image inputs"):
        cnn(vec)
    with pytest.raises(ConfigError, match="depth"):
        cnn(img, depth=4)


def _batch(targets):
    return Batch(inputs=torch.zeros(len(targets)), targets=torch.tensor(targets), index=torch.arange(len(targets)))


def test_cross_entropy_label_smoothing_and_balanced_class_weights():
    bundle = synthetic(0, num_classes=3)
    bundle.train_targets = [0] * 8 + [1] * 2 + [2] * 2
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -2.0]])
    plain = cross_entropy(bundle)(logits, _batch([0, 1, 2]))
    smooth = cross_entropy(bundle, label_smoothing=0.1)(logits, _batch([0, 1, 2]))
    weighted = cross_entropy(bundle, class_weights="balanced")
    assert torch.allclose(weighted.weight, torch.tensor([0.5, 2.0, 2.0]))
    assert set(plain.raw) == set(plain.weighted) == {"cls"}
    assert float(smooth.total) != float(plain.total)
    with pytest.raises(ConfigError, match="3 classes"):
        cross_entropy(bundle, class_weights=[1.0, 2.0])


def test_bce_one_hot_encodes_class_indices():
    bundle = synthetic(0, num_classes=2)
    logits = torch.tensor([[5.0, -5.0], [-5.0, 5.0]])
    assert float(bce(bundle)(logits, _batch([0, 1])).total) < 0.01
    assert float(bce(bundle)(logits, _batch([1, 0])).total) > 4


@pytest.mark.parametrize("kind", ["data", "model", "loss"])
def test_every_registered_component_imports(kind):
    for name, target in registry.REGISTRIES[kind].items():
        assert callable(registry.import_target(target)), name


def test_escape_hatch_imports_by_path():
    fn = registry.factory_for("model", {"_component_": "trainfix.trainers.components.models.mlp"})
    assert fn is mlp
    with pytest.raises(ConfigError, match="cannot import"):
        registry.import_target("no_such_pkg_xyz.Net")
