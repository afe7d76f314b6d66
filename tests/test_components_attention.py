"""Attention CNN and the self-corrective attention loss: shapes, the sparsity maths, the memory."""

from __future__ import annotations

import pytest
import torch

from trainfix.errors import ConfigError
from trainfix.trainers.components import attention
from trainfix.trainers.components.base import Batch, DataBundle, ModelOutput


def bundle(n: int = 32, task: str = "multiclass", classes: int = 10) -> DataBundle:
    x = torch.randn(n, 1, 16, 16)
    y = torch.randint(0, classes, (n,)) if task == "multiclass" else torch.randint(0, 2, (n, classes))
    ds = torch.utils.data.TensorDataset(x, y)
    return DataBundle(train=ds, val=ds, num_classes=classes, class_names=[str(i) for i in range(classes)],
                      task=task, input_shape=(1, 16, 16), train_targets=y.tolist() if task == "multiclass" else None)


def test_model_returns_unnormalised_map_in_unit_interval():
    torch.manual_seed(0)
    model = attention.attention_cnn(bundle())
    out = model(torch.randn(4, 1, 16, 16))
    assert out.logits.shape == (4, 10)
    attn = out.aux["attention"]
    assert attn.shape == (4, 8, 8)
    assert float(attn.detach().min()) >= 0.0 and float(attn.detach().max()) <= 1.0
    # un-normalised: the map does not sum to 1
    assert not torch.allclose(attn.flatten(1).sum(1), torch.ones(4))


def test_normalised_l1_is_constant_one_with_zero_gradient():
    """The original story's "L1 fix": sum of a map normalised to sum 1 is 1 whatever the map."""
    torch.manual_seed(0)
    attn = torch.rand(5, 8, 8, requires_grad=True)
    value = attention.normalized_l1_term(attn)
    assert torch.allclose(value, torch.ones(5), atol=1e-6)
    value.sum().backward()
    assert float(attn.grad.abs().max()) < 1e-6


def test_our_l1_has_a_gradient_that_lowers_every_cell():
    attn = torch.rand(5, 8, 8, requires_grad=True)
    attention.l1_term(attn).sum().backward()
    assert torch.allclose(attn.grad, torch.full_like(attn, 1.0 / 64))  # d mean|a| / da = 1/n for a > 0


def test_entropy_term_gradient_concentrates_the_map():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 8, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=200.0)
    before = float(attention.normalized_entropy_term(torch.sigmoid(logits.detach())).mean())
    for _ in range(100):
        opt.zero_grad()
        attention.normalized_entropy_term(torch.sigmoid(logits)).mean().backward()
        opt.step()
    after = float(attention.normalized_entropy_term(torch.sigmoid(logits.detach())).mean())
    assert after < before - 0.1


def test_gradient_of_seed_sparsity_vanishes_and_ours_reaches_the_model():
    """Through the whole model: normalised L1 gives the attention head no gradient, l1 does."""
    torch.manual_seed(0)
    b = bundle()
    model = attention.attention_cnn(b)
    x = torch.randn(8, 1, 16, 16)
    attention.normalized_l1_term(model(x).aux["attention"]).mean().backward()
    seed_grad = model.attention.weight.grad.abs().max().item()
    model.zero_grad()
    attention.l1_term(model(x).aux["attention"]).mean().backward()
    ours = model.attention.weight.grad.abs().max().item()
    assert seed_grad < 1e-7 < 1e-4 < ours


@pytest.mark.parametrize("kind", ["entropy", "l1", "none"])
def test_weighted_term_is_weight_times_raw_over_scale(kind):
    torch.manual_seed(0)
    b = bundle()
    model = attention.attention_cnn(b)
    loss = attention.self_corrective_attention(b, sparsity_kind=kind, sparsity_weight=0.5, sparsity_scale=4.0)
    x, y = b.train.tensors
    out = loss(model(x[:8]), Batch(x[:8], y[:8], torch.arange(8)))
    attn = model(x[:8]).aux["attention"]
    expected = {"entropy": attention.normalized_entropy_term(attn).mean() / 4.0,
                "l1": attention.l1_term(attn).mean() / 4.0, "none": torch.tensor(0.0)}[kind]
    assert torch.allclose(out.raw["sparsity"], expected.detach(), atol=1e-6)
    assert torch.allclose(out.weighted["sparsity"], 0.5 * out.raw["sparsity"])
    assert torch.allclose(out.total.detach(), out.weighted["cls"] + out.weighted["sparsity"] + out.weighted["consistency"])


def test_seed_settings_make_the_term_negligible():
    """weight 0.001 and scale 1000: the term enters the total at 1e-6 of its raw value."""
    torch.manual_seed(0)
    b = bundle()
    model = attention.attention_cnn(b)
    loss = attention.self_corrective_attention(b, sparsity_kind="entropy", sparsity_weight=0.001, sparsity_scale=1000)
    x, y = b.train.tensors
    out = loss(model(x[:8]), Batch(x[:8], y[:8], torch.arange(8)))
    share = float(out.weighted["sparsity"] / out.total.detach())
    assert share < 1e-5


class FixedModelOutput:
    """Build ModelOutputs with chosen logits and attention maps."""

    @staticmethod
    def make(correct: bool, attn: torch.Tensor) -> tuple[ModelOutput, torch.Tensor]:
        targets = torch.tensor([1, 2])
        logits = torch.full((2, 10), -5.0)
        picked = targets if correct else (targets + 1)
        logits[torch.arange(2), picked] = 5.0
        return ModelOutput(logits=logits, aux={"attention": attn}), targets


def test_consistency_pulls_when_right_and_pushes_when_wrong():
    b = bundle(n=4)
    loss = attention.self_corrective_attention(b, sparsity_kind="none", consistency_weight=1.0)
    first = torch.full((2, 4, 4), 0.2, requires_grad=True)
    out, y = FixedModelOutput.make(True, first)
    index = torch.tensor([0, 3])
    assert float(loss(out, Batch(torch.zeros(2), y, index)).raw["consistency"]) == 0.0  # no history yet

    now = torch.full((2, 4, 4), 0.7, requires_grad=True)
    out, y = FixedModelOutput.make(True, now)
    right = loss(out, Batch(torch.zeros(2), y, index))
    assert float(right.raw["consistency"]) == pytest.approx(0.5, abs=1e-6)  # mean |0.7 - 0.2|
    right.total.backward()
    assert float(now.grad.sum()) > 0  # descending moves the map back towards 0.2

    wrong_map = torch.full((2, 4, 4), 0.7, requires_grad=True)
    out, y = FixedModelOutput.make(False, wrong_map)
    wrong = loss(out, Batch(torch.zeros(2), y, index))  # memory now holds 0.7
    assert float(wrong.raw["consistency"]) == pytest.approx(1.0, abs=1e-6)  # exp(-0): identical map, pushed
    assert loss.scalars()["attn/consistency"] == pytest.approx(0.0, abs=1e-6)


def test_evaluation_batches_leave_the_memory_alone():
    b = bundle(n=4)
    loss = attention.self_corrective_attention(b, consistency_weight=1.0)
    out, y = FixedModelOutput.make(True, torch.full((2, 4, 4), 0.3))  # no grad: evaluation
    loss(out, Batch(torch.zeros(2), y, torch.tensor([0, 1])))
    assert loss.memory is None


def test_multilabel_uses_bce():
    torch.manual_seed(0)
    b = bundle(task="multilabel", classes=3)
    model = attention.attention_cnn(b)
    loss = attention.self_corrective_attention(b, sparsity_kind="l1", sparsity_weight=0.1)
    x, y = b.train.tensors
    out = model(x[:6])
    result = loss(out, Batch(x[:6], y[:6], torch.arange(6)))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, y[:6].float())
    assert torch.allclose(result.raw["cls"], expected.detach())


def test_bad_kind_is_a_config_error():
    with pytest.raises(ConfigError):
        attention.self_corrective_attention(bundle(), sparsity_kind="l2")


def test_memory_survives_a_state_dict_round_trip():
    b = bundle(n=4)
    loss = attention.self_corrective_attention(b, consistency_weight=1.0)
    out, y = FixedModelOutput.make(True, torch.full((2, 4, 4), 0.3, requires_grad=True))
    loss(out, Batch(torch.zeros(2), y, torch.tensor([0, 2])))
    fresh = attention.self_corrective_attention(b, consistency_weight=1.0)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.memory, loss.memory) and fresh.seen.tolist() == [True, False, True, False]


def test_digits_canvas_places_each_digit_on_a_blank_background():
    data = attention.digits_canvas(0, canvas_size=16, digit_size=8)
    x = data.train.inputs
    assert x.shape[1:] == (1, 16, 16) and data.input_shape == (1, 16, 16)
    background = float(x.min())
    blank = (x == background).float().mean(dim=(1, 2, 3))
    assert float(blank.min()) >= 0.75 - 1e-6  # at least the 192 cells outside the 8x8 digit
    # positions vary from sample to sample
    centers = [(img[0] > background).nonzero().float().mean(0) for img in x[:50]]
    assert torch.stack(centers).std(0).min() > 1.0
    again = attention.digits_canvas(0, canvas_size=16, digit_size=8)
    assert torch.equal(again.train.inputs, x)
