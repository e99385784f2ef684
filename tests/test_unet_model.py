"""UNetModel: loading real-layout checkpoints, refusing wrong ones, batched prediction."""

from __future__ import annotations

import pytest
import torch

from frame_generation_pipeline import UNetModel
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.contract import MODES
from frame_generation_pipeline.errors import CheckpointError, ConfigurationError


@pytest.fixture(scope="module")
def ave_state():
    return synthetic.random_unet_state("ave", seed=1)


def test_plain_dataparallel_and_training_loop_checkpoints_load_the_same(tmp_path, ave_state, caplog):
    torch.save(ave_state, tmp_path / "plain.pth")
    torch.save({f"module.{k}": v for k, v in ave_state.items()}, tmp_path / "dp.pth")
    torch.save({"state_dict": ave_state, "epoch": 5, "global_step": 900}, tmp_path / "trained.pth")  # Lightning's way
    plain = UNetModel(tmp_path / "plain.pth", "ave", device="cpu")
    with caplog.at_level("INFO", logger="frame_generation_pipeline"):
        others = [UNetModel(tmp_path / name, "ave", device="cpu") for name in ("dp.pth", "trained.pth")]
    for other in others:
        for (k1, v1), (k2, v2) in zip(plain.network.state_dict().items(), other.network.state_dict().items()):
            assert k1 == k2 and torch.equal(v1, v2)
    assert torch.equal(plain.network.state_dict()["outc.conv.bias"], ave_state["outc.conv.bias"])
    lines = [record.getMessage() for record in caplog.records if record.name.endswith(".checkpoints")]
    assert lines == [f"{tmp_path / 'trained.pth'}: a training checkpoint; using the weights under its 'state_dict' key "
                     "(not epoch, global_step)"]


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_predict_shapes_and_range(checkpoints, batch):
    model = UNetModel(checkpoints["ave"], "ave", device="cpu")
    out = model.predict(torch.rand(batch, 6, 320, 320), torch.randn(batch, 32, 16, 16))
    assert out.shape == (batch, 3, 320, 320) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_unbatched_sample_equals_batch_of_one(checkpoints):
    model = UNetModel(checkpoints["hubert"], "hubert", device="cpu")
    images, audio = torch.rand(6, 320, 320), torch.randn(32, 32, 32)
    assert torch.equal(model.predict(images, audio), model.predict(images[None], audio[None]))
    assert model.run(images[None].numpy(), audio[None].numpy()).shape == (1, 3, 320, 320)


def test_predict_refuses_wrong_audio_shape(checkpoints):
    model = UNetModel(checkpoints["ave"], "ave", device="cpu")
    with pytest.raises(ConfigurationError, match="32, 16, 16"):
        model.predict(torch.rand(1, 6, 320, 320), torch.randn(1, 32, 32, 32))


def test_wenet_checkpoint_as_ave_is_refused_by_name(checkpoints):
    with pytest.raises(CheckpointError, match="layout of mode 'wenet', but mode 'ave'"):
        UNetModel(checkpoints["wenet"], "ave", device="cpu")


def test_ave_checkpoint_as_wenet_is_refused_by_name(checkpoints):
    with pytest.raises(CheckpointError, match="mode 'ave' or 'hubert', but mode 'wenet'") as info:
        UNetModel(checkpoints["ave"], "wenet", device="cpu")
    assert "\n" not in str(info.value)


def test_layout_differences_are_counted_and_named(tmp_path, ave_state):
    state = dict(ave_state)
    del state["outc.conv.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["inc.inconv.0.conv.0.weight"] = torch.zeros(12, 7, 1, 1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as info:
        UNetModel(tmp_path / "odd.pth", "ave", device="cpu")
    message = str(info.value)
    assert "1 keys missing (first: outc.conv.bias)" in message
    assert "1 keys unexpected (first: extra.weight)" in message
    assert "inc.inconv.0.conv.0.weight: expected 12x6x1x1, found 12x7x1x1" in message


@pytest.mark.parametrize(
    "content, expected",
    [(None, "checkpoint file not found"), (b"not a checkpoint\n", "a text file, not a PyTorch checkpoint; expected a state_dict"),
     (b"PK\x03\x04 broken", "a damaged PyTorch checkpoint"), (b"\x00\xff\xfe", "unknown binary format"),
     ("pickle", "a pickle of Python objects other than tensors; expected a state_dict saved with torch.save"),
     ("list", "does not hold a state_dict")],
)
def test_missing_corrupt_and_foreign_checkpoints(tmp_path, content, expected):
    import argparse

    path = tmp_path / "model.pth"
    if content == "list":
        torch.save([torch.zeros(1)], path)
    elif content == "pickle":
        torch.save({"args": argparse.Namespace(lr=0.1)}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        UNetModel(path, "ave", device="cpu")
    assert str(path) in str(info.value)


def test_unknown_mode_and_device(checkpoints):
    with pytest.raises(ConfigurationError, match="unknown mode 'foo'"):
        UNetModel(checkpoints["ave"], "foo")
    with pytest.raises(ConfigurationError, match="unknown device"):
        UNetModel(checkpoints["ave"], "ave", device="tpu:7")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_refused_without_gpu(checkpoints):
    with pytest.raises(ConfigurationError, match="no CUDA GPU"):
        UNetModel(checkpoints["ave"], "ave", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(checkpoints):
    cpu = UNetModel(checkpoints["ave"], "ave", device="cpu")
    gpu = UNetModel(checkpoints["ave"], "ave", device="cuda")
    images, audio = torch.rand(2, 6, 320, 320), torch.randn(2, 32, 16, 16)
    torch.testing.assert_close(gpu.predict(images, audio).cpu(), cpu.predict(images, audio), rtol=0, atol=1e-3)


def test_every_mode_loads_its_own_checkpoint(checkpoints):
    for mode in MODES:
        assert UNetModel(checkpoints[mode], mode, device=None).mode.name == mode
