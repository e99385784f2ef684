"""Audio features: accepted shapes, the zero-padded 16-row window, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from frame_generation_pipeline.errors import AudioFeatureError
from frame_generation_pipeline.inputs.features import AudioFeatures, read_feature_array

from .spec_reference import audio_window


@pytest.mark.parametrize("mode, row_shape", [("ave", (512,)), ("hubert", (2, 1024)), ("wenet", (256, 32))])
def test_windows_equal_spec(mode, row_shape):
    rows = np.random.default_rng(1).normal(size=(20, *row_shape)).astype(np.float32)
    features = AudioFeatures(rows, mode)
    assert len(features) == 20
    for i in (0, 3, 8, 12, 19):
        assert np.array_equal(features.window(i), audio_window(rows, i, mode))
    assert features.windows([0, 19]).shape == (2, *features.mode.audio_shape)


def test_rows_outside_are_zeros_even_when_shorter_than_the_window():
    rows = np.arange(1, 3 * 512 + 1, dtype=np.float32).reshape(3, 512)
    window = AudioFeatures(rows, "ave").window(0).reshape(16, 512)
    assert not window[:8].any() and not window[11:].any()
    assert np.array_equal(window[8:11], rows)


def test_hubert_flat_and_split_rows_are_the_same_features():
    rows = np.random.default_rng(2).normal(size=(9, 2048)).astype(np.float32)
    a = AudioFeatures(rows, "hubert")
    b = AudioFeatures(rows.reshape(9, 2, 1024), "hubert")
    assert all(np.array_equal(a.window(i), b.window(i)) for i in range(9))


def test_prewindowed_rows_pass_through():
    rows = np.random.default_rng(3).normal(size=(4, 32, 16, 16)).astype(np.float32)
    features = AudioFeatures(rows, "ave")
    assert features.prewindowed and np.array_equal(features.window(2), rows[2])


def test_float64_is_converted_to_float32():
    features = AudioFeatures(np.ones((2, 512)), "ave")
    assert features.window(0).dtype == np.float32


@pytest.mark.parametrize(
    "array, message",
    [(np.zeros((5, 2048), np.float32), "does not fit mode 'ave'"), (np.zeros((0, 512), np.float32), "zero feature rows"),
     (np.zeros(512, np.float32), "2-D or larger"), (np.array([["a"] * 512]), "numeric")],
)
def test_bad_arrays_are_refused(tmp_path, array, message):
    path = tmp_path / "feats.npy"
    np.save(path, array)
    with pytest.raises(AudioFeatureError, match=message) as info:
        AudioFeatures.load(path, "ave")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_with_the_row(tmp_path, bad):
    rows = np.zeros((6, 512), np.float32)
    rows[4, 7] = bad
    np.save(tmp_path / "f.npy", rows)
    with pytest.raises(AudioFeatureError, match="NaN or infinite values \\(first at row 4\\)"):
        AudioFeatures.load(tmp_path / "f.npy", "ave")


def test_missing_and_non_npy_files(tmp_path):
    with pytest.raises(AudioFeatureError, match="not found"):
        AudioFeatures.load(tmp_path / "none.npy", "ave")
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(AudioFeatureError, match="not a readable .npy"):
        AudioFeatures.load(tmp_path / "text.npy", "ave")
    np.savez(tmp_path / "archive.npz", a=np.zeros((2, 512)))
    with pytest.raises(AudioFeatureError, match=".npz"):
        AudioFeatures.load(tmp_path / "archive.npz", "ave")


def test_speech_given_as_features_is_named_as_speech(tmp_path):
    speech = tmp_path / "speech.wav"
    speech.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(AudioFeatureError, match=r"speech\.wav: is speech, not a feature file \(\.npy or \.bin\)"):
        read_feature_array(speech)
