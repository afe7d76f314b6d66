"""Multi-task digits, the multi-head CNN and Kendall-style uncertainty weighting."""

from __future__ import annotations

import math

import pytest
import torch

from trainfix.errors import ConfigError
from trainfix.trainers.components import multitask
from trainfix.trainers.components.base import Batch, ModelOutput


@pytest.fixture(scope="module")
def data():
    return multitask.digits_multitask(0, image_size=8)


def test_task_labels_are_derived_from_the_digit(data):
    x, y, i = data.train[5]
    assert y.shape == (3,)
    targets = data.train.targets
    assert data.task == "multitask" and data.task_names == ["digit", "parity", "ge5"]
    assert torch.equal(targets[:, 1], targets[:, 0] % 2)
    assert torch.equal(targets[:, 2], (targets[:, 0] >= 5).long())
    assert data.num_classes == 10


def test_model_has_one_head_per_task(data):
    model = multitask.multitask_cnn(data)
    out = model(data.train.inputs[:4])
    shapes = {t: tuple(v.shape) for t, v in out.aux["task_logits"].items()}
    assert shapes == {"digit": (4, 10), "parity": (4, 2), "ge5": (4, 2)}
    assert out.logits is out.aux["task_logits"]["digit"]


def fake_output(losses_target: dict[str, float]) -> tuple[ModelOutput, Batch]:
    """Logits whose cross-entropy per task is known."""
    logits = {"digit": torch.zeros(2, 10), "parity": torch.zeros(2, 2), "ge5": torch.zeros(2, 2)}
    targets = torch.zeros(2, 3, dtype=torch.long)
    return ModelOutput(logits=logits["digit"], aux={"task_logits": logits}), Batch(torch.zeros(2), targets, torch.arange(2))


def test_total_is_kendall_sum(data):
    loss = multitask.uncertainty_multitask(data, log_var_init="random", log_var_init_std=0.3)
    out, batch = fake_output({})
    result = loss(out, batch)
    s = loss.log_vars.detach()
    per_task = torch.tensor([math.log(10), math.log(2), math.log(2)])  # uniform logits
    expected = (torch.exp(-s) * per_task + s).sum()
    assert torch.allclose(result.total.detach(), expected, atol=1e-5)
    assert torch.allclose(result.raw["digit"], torch.tensor(math.log(10)), atol=1e-5)
    assert set(result.weighted) == {"digit", "parity", "ge5"}
    assert torch.allclose(sum(result.weighted.values()), result.total.detach())


def test_log_variance_converges_to_log_of_task_loss(data):
    """d/ds [exp(-s) L + s] = 1 - exp(-s) L = 0 at s = log L: weights follow task difficulty."""
    loss = multitask.uncertainty_multitask(data, log_var_bounds=[-5, 5])
    opt = torch.optim.SGD(loss.parameters(), lr=0.2)
    out, batch = fake_output({})
    for _ in range(400):
        opt.zero_grad()
        loss(out, batch).total.backward()
        opt.step()
    expected = torch.log(torch.tensor([math.log(10), math.log(2), math.log(2)]))
    assert torch.allclose(loss.log_vars.detach(), expected, atol=1e-3)
    weights = loss.scalars()
    assert weights["uw/weight/digit"] < weights["uw/weight/parity"]
    assert weights["uw/weight/digit"] == pytest.approx(1 / math.log(10), rel=1e-3)


def test_bounds_clamp_and_narrow_bounds_squeeze_weights(data):
    loss = multitask.uncertainty_multitask(data, log_var_bounds=[-1, 1])
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([-3.0, 0.5, 3.0]))
    w = loss.scalars()
    assert w["uw/log_var/digit"] == -1.0 and w["uw/log_var/ge5"] == 1.0
    assert w["uw/weight/digit"] == pytest.approx(math.e, rel=1e-6)  # the most [-1, 1] allows
    assert w["uw/weight/ge5"] == pytest.approx(1 / math.e, rel=1e-6)


def test_own_param_group_and_lr(data):
    loss = multitask.uncertainty_multitask(data, log_var_lr=0.01)
    (group,) = loss.param_groups(1e-4)
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.0 and group["params"][0] is loss.log_vars
    (default,) = multitask.uncertainty_multitask(data).param_groups(3e-4)
    assert default["lr"] == 3e-4


def test_left_out_of_the_optimizer(data):
    loss = multitask.uncertainty_multitask(data, log_var_in_optimizer=False)
    assert loss.param_groups(1e-3) == [] and loss.in_optimizer is False
    assert not loss.log_vars.requires_grad


def test_inits(data):
    zeros = multitask.uncertainty_multitask(data)
    assert torch.equal(zeros.log_vars.detach(), torch.zeros(3))
    a = multitask.uncertainty_multitask(data, log_var_init="random", log_var_init_std=0.1, init_seed=1)
    b = multitask.uncertainty_multitask(data, log_var_init="random", log_var_init_std=0.1, init_seed=1)
    assert torch.equal(a.log_vars, b.log_vars)
    assert 0 < float(a.log_vars.detach().abs().max()) < 0.5


def test_config_errors(data):
    with pytest.raises(ConfigError):
        multitask.uncertainty_multitask(data, log_var_init="ones")
    with pytest.raises(ConfigError):
        multitask.uncertainty_multitask(data, log_var_bounds=[1, -1])
    with pytest.raises(ConfigError):
        multitask.digits_multitask(0, tasks=["digit", "colour"])
