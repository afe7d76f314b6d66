"""Attribution maps: our differentiable Grad-CAM / Guided Backprop equal captum's, layers by name,
map metrics on maps whose answer is known, digits-canvas boxes, and the trainer's attn/* scalars."""

from __future__ import annotations

import math

import pytest

import torch
import captum  # noqa: F401 - a declared dependency; its absence must fail, not skip
nn = torch.nn

from captum.attr import GuidedBackprop, LayerGradCam  # noqa: E402

from trainfix.errors import UsageError  # noqa: E402
from trainfix.trainers.attribution import metrics as M  # noqa: E402
from trainfix.trainers.attribution.gradcam import grad_cam, guided_backprop  # noqa: E402
from trainfix.trainers.attribution.layers import LogitsOnly, default_layer, find_layer  # noqa: E402
from trainfix.trainers.attribution.maps import compute_maps  # noqa: E402
from trainfix.trainers.attribution.summary import measure, summarise  # noqa: E402
from trainfix.trainers.components.attention import attention_cnn, digits_canvas  # noqa: E402


class UserNet(nn.Module):
    """A user's model: plain tensor output, its own layer names, in-place ReLUs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True))
        self.block = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.block(self.stem(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def canvas():
    return digits_canvas(0, background_noise=0.3)


@pytest.fixture
def attn_model(canvas):
    torch.manual_seed(0)
    return attention_cnn(canvas, channels=8).eval()


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("which", ["attention-cnn", "user"])
def test_our_gradcam_equals_captum_layergradcam(canvas, attn_model, which, relu):
    torch.manual_seed(1)
    model = attn_model if which == "attention-cnn" else UserNet().eval()
    layer_name = "gated" if which == "attention-cnn" else "block.0"
    layer = find_layer(model, layer_name)
    x = canvas.val.inputs[:12]
    ours, _, target = grad_cam(model, layer, x, relu=relu)  # turns the in-place ReLUs off, for captum too
    ref = LayerGradCam(LogitsOnly(model), layer).attribute(x, target=target, relu_attributions=relu).squeeze(1)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-5)
    assert float(ours.abs().max()) > 0


def test_our_guided_backprop_equals_captum(canvas, attn_model):
    from trainfix.trainers.attribution.layers import disable_inplace

    x = canvas.val.inputs[:8]
    model = disable_inplace(UserNet().eval())
    for m in (attn_model, model):
        ours, _, target = guided_backprop(m, x)
        ref = GuidedBackprop(LogitsOnly(m)).attribute(x, target=target)
        assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-5)


def test_differentiable_gradcam_carries_gradient_to_the_weights(canvas, attn_model):
    x = canvas.val.inputs[:4]
    cam, _, _ = grad_cam(attn_model, find_layer(attn_model, "gated"), x, create_graph=True)
    assert cam.requires_grad
    cam.sum().backward()
    grads = {n: p.grad for n, p in attn_model.named_parameters() if p.grad is not None}
    assert grads["head.weight"].abs().sum() > 0  # the class weights enter only through d y_c / d A
    assert grads["trunk.0.weight"].abs().sum() > 0


def test_differentiable_guided_backprop_carries_gradient_to_the_weights(canvas, attn_model):
    g, _, _ = guided_backprop(attn_model, canvas.val.inputs[:4], create_graph=True)
    g.abs().sum().backward()
    assert attn_model.head.weight.grad.abs().sum() > 0


def test_unknown_layer_is_one_line_listing_the_layers(attn_model):
    with pytest.raises(UsageError) as err:
        find_layer(attn_model, "layer4")
    msg = str(err.value)
    assert "\n" not in msg and "'layer4'" in msg and "trunk.0" in msg and "gated" in msg


def test_default_layer_is_declared_or_last_conv(attn_model):
    assert default_layer(attn_model) == "gated"
    assert default_layer(UserNet()) == "block.0"


def test_metrics_on_maps_with_known_answers():
    uniform = torch.ones(1, 8, 8)
    onehot = torch.zeros(1, 8, 8)
    onehot[0, 2, 3] = 5.0
    blank = torch.zeros(1, 8, 8)
    maps = torch.cat([uniform, onehot, blank])
    ent, hoy = M.entropy(maps), M.hoyer(maps)
    assert ent[0] == pytest.approx(1.0, abs=1e-5) and ent[1] == pytest.approx(0.0, abs=1e-5) and math.isnan(ent[2])
    assert hoy[0] == pytest.approx(0.0, abs=1e-5) and hoy[1] == pytest.approx(1.0, abs=1e-5) and math.isnan(hoy[2])
    assert M.is_blank(maps).tolist() == [False, False, True]
    box = torch.tensor([[0, 0, 4, 4]] * 3)
    assert M.pointing_game(maps, box).tolist() == [1.0, 1.0, 0.0]  # uniform: argmax is pixel (0, 0); blank: a miss
    e = M.energy_in_box(maps, box)
    assert e[0] == pytest.approx(16 / 64) and e[1] == pytest.approx(1.0) and math.isnan(e[2])


def test_agreement_is_pearson_at_the_coarser_resolution():
    torch.manual_seed(0)
    coarse = torch.rand(3, 4, 4)
    fine = coarse.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)  # same map at 16x16
    assert torch.allclose(M.agreement(coarse, fine), torch.ones(3), atol=1e-5)
    assert torch.allclose(M.agreement(coarse, -coarse), -torch.ones(3), atol=1e-5)
    assert math.isnan(float(M.agreement(torch.ones(1, 4, 4), coarse[:1])[0]))


def test_digits_canvas_boxes_hold_the_digit_and_labels_can_be_few():
    b = digits_canvas(3)
    x, boxes = b.val.inputs, b.boxes["val"]
    inside = M.box_mask(boxes, (16, 16)).unsqueeze(1)
    background = float(x.amin())
    assert torch.all(x[~inside.expand_as(x)] == background)
    assert (boxes[:, 2] - boxes[:, 0] == 8).all() and (boxes[:, 3] - boxes[:, 1] == 8).all()
    few = digits_canvas(3, labelled_per_class=2)
    assert len(few.train) == 20 and sorted(few.train_targets) == sorted(list(range(10)) * 2)
    assert len(few.train) + len(few.unlabelled) == len(b.train)
    assert len(few.boxes["train"]) == 20


def test_compute_maps_and_summary_on_a_user_model(canvas):
    torch.manual_seed(0)
    model = UserNet()
    maps = compute_maps(model, canvas.val.inputs[:6], layer="block.0", ig_steps=4)
    assert maps.gradcam.shape == (6, 16, 16) and maps.guided.shape == (6, 16, 16) and maps.ig.shape == (6, 16, 16)
    assert model.training  # mode restored
    scalars = summarise(measure(maps, canvas.boxes["val"][:6]))
    for tag in ("attn/gradcam_entropy", "attn/gradcam_hoyer", "attn/gradcam_blank_share", "attn/gradcam_guided_agreement",
                "attn/pointing_game", "attn/energy_in_box", "attn/ig_entropy", "attn/ig_pointing_game"):
        assert tag in scalars
    assert 0.0 <= scalars["attn/pointing_game"] <= 1.0


def test_attention_capable_reads_yaml_booleans_as_on_and_off():
    from types import SimpleNamespace

    from trainfix.trainers.attribution.evaluation import attention_capable

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    images = SimpleNamespace(input_shape=(1, 8, 8))
    assert attention_capable(net, images, True) and attention_capable(net, images, "on")
    assert not attention_capable(net, images, False) and not attention_capable(net, images, "off")
