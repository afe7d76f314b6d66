"""Digit bags, the dual-stream MIL model, its temperature schedule and the MIL loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainfix.errors import ConfigError
from trainfix.trainers.components import mil
from trainfix.trainers.components.base import Batch


@pytest.fixture(scope="module")
def bags():
    return mil.digits_bags(0, num_train_bags=300, num_val_bags=60)


def test_bag_lengths_follow_the_clipped_normal():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=500)
    b, y = mil.make_bags(labels, 2000, 9, 10.0, 2.0, 2, 20, rng)
    lengths = np.array([len(x) for x in b])
    assert abs(lengths.mean() - 10.0) < 0.2 and 1.7 < lengths.std() < 2.3
    assert lengths.min() >= 2 and lengths.max() <= 20
    assert all(int((labels[x] == 9).any()) == t for x, t in zip(b, y))


def test_bags_use_their_own_split(bags):
    assert bags.task == "binary-bag" and bags.num_classes == 2
    assert bags.train.images.shape[0] != bags.val.images.shape[0]
    assert 0.4 < bags.info["train_positive_fraction"] < 0.85  # 1 - 0.9**10 ~ 0.65


def test_collate_pads_with_mask(bags):
    items = [bags.train[i] for i in range(5)]
    batch = bags.collate_fn(items)
    lengths = [it[0].shape[0] for it in items]
    assert batch.inputs.shape[:2] == (5, max(lengths))
    assert batch.extra["mask"].sum(1).tolist() == lengths
    assert torch.isnan(batch.inputs[~batch.extra["mask"]]).all()
    assert not torch.isnan(batch.inputs[batch.extra["mask"]]).any()


@pytest.mark.parametrize("selection", ["hard", "soft"])
def test_padding_is_ignored(bags, selection):
    torch.manual_seed(0)
    model = mil.mil_dual_stream(bags, selection=selection).eval()
    bag, _, _ = bags.train[0]
    alone = model(bag.unsqueeze(0))
    padded = torch.cat([bag, torch.full((4, *bag.shape[1:]), float("nan"))]).unsqueeze(0)
    with_pad = model(padded)
    assert torch.allclose(alone.logits, with_pad.logits, atol=1e-5)
    assert float(with_pad.aux["attention_weights"][0, -4:].detach().sum()) == 0.0
    assert float(with_pad.aux["selection_weights"][0, -4:].detach().sum()) == 0.0
    explicit = model(torch.nan_to_num(padded), mask=~torch.isnan(padded.flatten(2)).any(2))
    assert torch.allclose(explicit.logits, with_pad.logits)


def test_hard_is_one_hot_and_soft_flattens_with_temperature(bags):
    torch.manual_seed(0)
    batch = bags.collate_fn([bags.train[i] for i in range(4)])
    hard = mil.mil_dual_stream(bags, selection="hard")
    sel = hard(batch.inputs).aux["selection_weights"]
    assert torch.equal(sel.sum(1), torch.ones(4)) and set(sel.unique().tolist()) == {0.0, 1.0}
    soft = mil.mil_dual_stream(bags, selection="soft")
    soft.load_state_dict(hard.state_dict())
    soft.temperature = 0.1
    sharp = soft(batch.inputs).aux["selection_weights"].detach()
    soft.temperature = 10.0
    flat = soft(batch.inputs).aux["selection_weights"].detach()
    assert torch.allclose(flat.sum(1), torch.ones(4))
    assert float(flat.max(1).values.mean()) < float(sharp.max(1).values.mean())


def test_soft_selection_sends_gradient_to_every_instance(bags):
    """Instance scores get gradient only through the selection stream: soft reaches every
    instance, hard only the arg-max winner."""
    torch.manual_seed(0)
    bag, _, _ = bags.train[0]
    for selection in ("soft", "hard"):
        model = mil.mil_dual_stream(bags, selection=selection)
        out = model(bag.unsqueeze(0))
        scores = out.aux["instance_logits"]
        scores.retain_grad()
        out.logits[0, 1].backward()
        reached = (scores.grad[0].abs().sum(-1) > 0).sum().item()
        assert reached == (bag.shape[0] if selection == "soft" else 1)


def test_temperature_anneals_linearly(bags):
    model = mil.mil_dual_stream(bags, selection="soft", temperature_start=10.0, temperature_end=1.0)
    temps = [model.on_epoch_start(e, 10)["mil/temperature"] for e in range(10)]
    assert temps[0] == 10.0 and temps[-1] == 1.0
    assert np.allclose(np.diff(temps), -1.0)
    assert model.temperature == 1.0
    assert mil.linear_temperature(0, 1, 10.0, 1.0) == 1.0


def test_entropy_regulariser_raises_attention_entropy():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, requires_grad=True)
    mask = torch.ones(4, 6, dtype=torch.bool)
    opt = torch.optim.SGD([logits], lr=1.0)
    h0 = float(mil.attention_entropy(torch.softmax(logits.detach(), 1), mask).mean())
    for _ in range(300):
        opt.zero_grad()
        (-mil.attention_entropy(torch.softmax(logits, 1), mask).mean()).backward()  # the loss's sign
        opt.step()
    h1 = float(mil.attention_entropy(torch.softmax(logits.detach(), 1), mask).mean())
    assert h1 > h0 and h1 == pytest.approx(np.log(6), abs=0.05)


def test_confidence_term_is_bounded_and_only_on_positive_bags():
    mask = torch.ones(2, 3, dtype=torch.bool)
    separated = torch.tensor([[[10.0, -10.0], [-10.0, 10.0], [10.0, -10.0]]] * 2)
    assert float(mil.selection_confidence_gap(separated, mask, torch.tensor([1, 1]))) == pytest.approx(0.0, abs=1e-6)
    same = torch.zeros(2, 3, 2)
    assert float(mil.selection_confidence_gap(same, mask, torch.tensor([1, 0]))) == pytest.approx(1.0)
    assert float(mil.selection_confidence_gap(same, mask, torch.tensor([0, 0]))) == 0.0


def test_label_smoothing_floors_the_loss(bags):
    torch.manual_seed(0)
    model = mil.mil_dual_stream(bags, selection="soft")
    batch = bags.collate_fn([bags.train[i] for i in range(4)])
    loss = mil.mil_loss(bags, label_smoothing=0.1, entropy_weight=0.01, confidence_weight=0.01)
    out = model(batch.inputs)
    result = loss(out, Batch(batch.inputs, batch.targets, batch.index, batch.extra))
    assert set(result.raw) == {"cls", "entropy", "confidence"}
    assert torch.allclose(result.weighted["entropy"], 0.01 * result.raw["entropy"])
    # a perfect prediction still costs the smoothing entropy: loss >= H(0.95, 0.05)
    perfect = torch.tensor([[-20.0, 20.0]]).repeat(4, 1)
    floor = -(0.95 * np.log(0.95) + 0.05 * np.log(0.05))
    ce = torch.nn.functional.cross_entropy(perfect, torch.ones(4, dtype=torch.long), label_smoothing=0.1)
    assert float(ce) >= floor - 1e-4


def test_bad_selection_is_a_config_error(bags):
    with pytest.raises(ConfigError):
        mil.mil_dual_stream(bags, selection="gumbel")
