"""The U-Net and the audio encoder against the real checkpoint layouts; the U-Net against a
functional transcription of docs/contract.md "The network"."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from frame_generation_pipeline.contract import MODES
from frame_generation_pipeline.models.audio_encoder import AudioEncoderNet
from frame_generation_pipeline.models.network import SyncTalkUNet

from .conftest import DATA

LAYOUTS = DATA / "checkpoint-layout"


def _layout_rows(name):
    return [
        line.rstrip("\n").split("\t")
        for line in (LAYOUTS / f"{name}.tsv").read_text().splitlines()
        if line and not line.startswith("#")
    ]


def _our_rows(module):
    return [
        [k, str(v.dtype).removeprefix("torch."), "x".join(map(str, v.shape)) or "scalar"]
        for k, v in module.state_dict().items()
    ]


@pytest.mark.parametrize("mode", list(MODES))
def test_state_dict_matches_real_layout(mode):
    rows = _layout_rows(mode)
    assert _our_rows(SyncTalkUNet(mode)) == rows


def test_audio_encoder_matches_real_layout():
    rows = _layout_rows("audio_encoder")
    assert _our_rows(AudioEncoderNet()) == rows
    assert sum(int(torch.tensor([int(n) for n in shape.split("x")]).prod()) for _, dtype, shape in rows
               if dtype == "float32" and shape != "scalar") > 2_700_000


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], False, 0.0, 1e-5)


def _block(x, sd, p, stride, residual):
    h = F.relu(_bn(F.conv2d(x, sd[p + "conv.0.weight"]), sd, p + "conv.1."))
    h = F.conv2d(h, sd[p + "conv.3.weight"], stride=stride, padding=1, groups=h.shape[1])
    h = F.relu(_bn(h, sd, p + "conv.4."))
    h = _bn(F.conv2d(h, sd[p + "conv.6.weight"]), sd, p + "conv.7.")
    return x + h if residual else h


def _double(x, sd, p, stride):
    return _block(_block(x, sd, p + "double_conv.0.", stride, False), sd, p + "double_conv.1.", 1, True)


def _up(x, skip, sd, p):
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
    x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
    return _double(torch.cat([x, skip], 1), sd, p + "conv.", 1)


def _conv_bn_relu(x, sd, n, stride, padding):
    a = "audio_model."
    y = F.conv2d(x, sd[f"{a}conv{n}.weight"], sd[f"{a}conv{n}.bias"], stride=stride, padding=padding)
    return F.relu(_bn(y, sd, f"{a}bn{n}."))


def functional_unet(sd, mode, images, audio):
    """SPEC.md 'The network', written out with torch.nn.functional on the raw state_dict."""
    a = "audio_model."
    if mode == "wenet":
        y = _block(audio, sd, a + "conv1.", 1, True)
        y = _block(y, sd, a + "conv2.", 1, True)
        y = _conv_bn_relu(y, sd, 3, (1, 2), 1)
    else:
        y = _block(audio, sd, a + "conv1.", 1, False)
        y = _block(y, sd, a + "conv2.", 1, False)
        y = _conv_bn_relu(y, sd, 3, 2 if mode == "hubert" else 1, 1)
    y = _block(y, sd, a + "conv4.", 1, True)
    y = _conv_bn_relu(y, sd, 5, 2, 3)
    y = _block(_block(y, sd, a + "conv6.", 1, True), sd, a + "conv7.", 1, True)
    x1 = _block(images, sd, "inc.inconv.0.", 1, False)
    skips = [x1]
    for n in range(1, 6):
        skips.append(_double(skips[-1], sd, f"down{n}.maxpool_conv.0.", 2))
    x = torch.cat([skips[5], y], 1)
    x = _double(_double(x, sd, "fuse_conv.0.", 1), sd, "fuse_conv.1.", 1)
    for n in range(1, 6):
        x = _up(x, skips[5 - n], sd, f"up{n}.")
    return torch.sigmoid(F.conv2d(x, sd["outc.conv.weight"], sd["outc.conv.bias"]))


@pytest.mark.parametrize("mode", list(MODES))
def test_module_equals_functional_transcription(mode, checkpoints):
    state = torch.load(checkpoints[mode])
    net = SyncTalkUNet(mode)
    net.load_state_dict(state)
    net.eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((1, 6, 320, 320), generator=generator)
    audio = torch.randn((1, *MODES[mode].audio_shape), generator=generator)
    with torch.inference_mode():
        ours = net(images, audio)
        reference = functional_unet(state, mode, images, audio)
    assert ours.shape == (1, 3, 320, 320)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-4)  # wiring faults give > 1e-2
    assert 0.1 < float(ours.std()) and 0.0 <= float(ours.min()) and float(ours.max()) <= 1.0


def test_modes_differ_only_where_spec_says():
    ave, hubert, wenet = (SyncTalkUNet(m).state_dict() for m in ("ave", "hubert", "wenet"))
    assert {k: v.shape for k, v in ave.items()} == {k: v.shape for k, v in hubert.items()}
    assert ave["audio_model.conv1.conv.0.weight"].shape == (64, 32, 1, 1)
    assert wenet["audio_model.conv1.conv.0.weight"].shape == (512, 256, 1, 1)
