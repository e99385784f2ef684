"""A deliberately naive, line-by-line transcription of docs/contract.md, the yardstick of the tests.

It shares no code with the package except the network module, which test_network.py checks
separately against a functional transcription of the contract's "The network".
"""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np
import torch

from frame_generation_pipeline.models.network import SyncTalkUNet

AUDIO_SHAPES = {"ave": (32, 16, 16), "hubert": (32, 32, 32), "wenet": (256, 16, 32)}


@functools.lru_cache(maxsize=4)
def load_net(checkpoint_path, mode):
    state = torch.load(checkpoint_path, map_location="cpu")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    net = SyncTalkUNet(mode)
    net.load_state_dict(state)
    net.eval()
    return net


def template_indices(num_frames, n, start_frame=0):
    """SPEC step 1, with the start_frame fix: bounce over s..N-1."""
    out = []
    if n - start_frame == 1:
        return [start_frame] * num_frames
    idx = 0
    step = 0
    nn_ = n - start_frame
    for _ in range(num_frames):
        if idx > nn_ - 2:
            step = -1
        if idx < 1:
            step = 1
        idx += step
        out.append(idx + start_frame)
    return out


def audio_window(features, i, mode):
    """SPEC step 8."""
    shape = AUDIO_SHAPES[mode]
    if features.shape[1:] == shape:
        return features[i]
    flat = features.reshape(features.shape[0], -1)
    rows = []
    for j in range(i - 8, i + 8):
        if j < 0 or j >= flat.shape[0]:
            rows.append(np.zeros(flat.shape[1], dtype=np.float32))
        else:
            rows.append(flat[j])
    return np.array(rows, dtype=np.float32).reshape(shape)


def landmarks_from_text(text):
    """SPEC step 2: float32 rows, then int32 (truncation toward zero)."""
    lms_list = []
    for line in text.splitlines():
        arr = line.split(" ")
        arr = np.array(arr, dtype=np.float32)
        lms_list.append(arr)
    return np.array(lms_list, dtype=np.int32)


def crop_box(lms):
    """SPEC step 3: (xmin, ymin, xmax, ymax)."""
    xmin = lms[1][0]
    ymin = lms[52][1]
    xmax = lms[31][0]
    width = xmax - xmin
    ymax = ymin + width
    return xmin, ymin, xmax, ymax


def image_input(crop_img):
    """SPEC steps 4-7 on the crop: (the 328 square, the (1, 6, 320, 320) float32 input tensor)."""
    crop_img = cv2.resize(crop_img, (328, 328), interpolation=cv2.INTER_CUBIC)
    crop_img_ori = crop_img.copy()
    img_real_ex = crop_img[4:324, 4:324].copy()
    img_real_ex_ori = img_real_ex.copy()
    img_masked = cv2.rectangle(img_real_ex_ori, (5, 5, 310, 305), (0, 0, 0), -1)
    img_masked = img_masked.transpose(2, 0, 1).astype(np.float32)
    img_real_ex = img_real_ex.transpose(2, 0, 1).astype(np.float32)
    img_real_ex_T = torch.from_numpy(img_real_ex / 255.0)
    img_masked_T = torch.from_numpy(img_masked / 255.0)
    img_concat_T = torch.cat([img_real_ex_T, img_masked_T], axis=0)[None]
    return crop_img_ori, img_concat_T


def to_pixels(pred):
    """SPEC step 10: a (3, 320, 320) network output as 320 x 320 x 3 uint8, truncated."""
    pred = pred.transpose(1, 2, 0) * 255
    return np.array(pred, dtype=np.uint8)


def paste(img, box, crop_img_ori, pixels, parsing=None):
    """SPEC steps 11-13: the frame `img` (changed in place) with `pixels` pasted into the 328 square
    `crop_img_ori` of step 4, kept where the `parsing` image is red or white."""
    xmin, ymin, xmax, ymax = box
    crop_img_par = img[ymin:ymax, xmin:xmax].copy()
    h, w = crop_img_par.shape[:2]
    crop_img_ori = crop_img_ori.copy()
    crop_img_ori[4:324, 4:324] = pixels
    crop_img_ori = cv2.resize(crop_img_ori, (w, h), interpolation=cv2.INTER_CUBIC)
    if parsing is not None:
        par = parsing[ymin:ymax, xmin:xmax]
        red = (par[:, :, 0] == 0) & (par[:, :, 1] == 0) & (par[:, :, 2] == 255)
        white = (par[:, :, 0] == 255) & (par[:, :, 1] == 255) & (par[:, :, 2] == 255)
        crop_img_ori[red | white] = crop_img_par[red | white]
    img[ymin:ymax, xmin:xmax] = crop_img_ori
    return img


def render(checkpoint_path, mode, template_dir, features, start_frame=0, use_parsing=False, keep=None):
    """Yield the frames of SPEC.md for per-frame or windowed `features` (a float32 array)."""
    net = load_net(checkpoint_path, mode)
    img_dir = os.path.join(template_dir, "full_body_img")
    n = len([f for f in os.listdir(img_dir) if f.endswith(".jpg")])
    indices = template_indices(features.shape[0], n, start_frame)
    for i in range(features.shape[0]):
        k = indices[i]
        img = cv2.imread(os.path.join(img_dir, str(k) + ".jpg"))
        with open(os.path.join(template_dir, "landmarks", str(k) + ".lms")) as f:
            lms = landmarks_from_text(f.read())
        xmin, ymin, xmax, ymax = box = crop_box(lms)
        crop_img_ori, img_concat_T = image_input(img[ymin:ymax, xmin:xmax])
        audio_feat = torch.from_numpy(audio_window(features, i, mode))[None]
        with torch.no_grad():
            pred = net(img_concat_T, audio_feat)[0]
        raw = pred.numpy()
        parsing = cv2.imread(os.path.join(template_dir, "parsing", str(k) + ".png")) if use_parsing else None
        img = paste(img, box, crop_img_ori, to_pixels(raw), parsing)
        if keep is not None:
            keep.append({"input": img_concat_T.numpy(), "audio": audio_feat.numpy(), "output": raw[None],
                         "template": k, "box": [int(xmin), int(ymin), int(xmax), int(ymax)]})
        yield img


def assert_same_frame(actual, expected, what="frame"):
    """Exact means exact: same shape, every value equal (the torch path on the CPU)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert not diff.any(), f"{what}: {int((diff > 0).sum())} values differ, by up to {diff.max()}"


def max_difference(actual, expected):
    """Largest per-value difference of two uint8 frames."""
    return int(np.abs(actual.astype(np.int16) - expected.astype(np.int16)).max())


def librosa_load(wav_path):
    """librosa.load(wav_path, sr=16000) transcribed (librosa 0.10-0.11): soundfile's float32 samples, the
    channels' mean, soxr HQ to 16 kHz, cut or zero-padded to ceil(n * 16000 / rate) samples."""
    import soundfile
    import soxr

    y, rate = soundfile.read(wav_path, dtype="float32", always_2d=False)
    y = y.T
    if y.ndim > 1:
        y = np.mean(y, axis=0)
    if rate != 16000:
        n_samples = int(np.ceil(y.shape[-1] * 16000 / rate))
        y_hat = soxr.resample(y, rate, 16000, quality="HQ")
        if len(y_hat) > n_samples:
            y_hat = y_hat[:n_samples]
        else:
            y_hat = np.pad(y_hat, (0, n_samples - len(y_hat)))
        y = np.asarray(y_hat, dtype=np.float32)
    return y, 16000


def preemphasis(wav):
    """scipy.signal.lfilter([1, -0.97], [1], wav) transcribed: y[i] = x[i] - 0.97 x[i - 1], in float64."""
    x = np.asarray(wav, dtype=np.float64)
    y = np.empty_like(x)
    y[0] = x[0]
    y[1:] = x[1:] - 0.97 * x[:-1]
    return y


def librosa_stft(y, n_fft=800, hop_length=200):
    """librosa.stft(y, n_fft, hop_length, win_length=n_fft) transcribed: centred with n_fft // 2 zeros on
    each side (pad_mode "constant"), the periodic Hann window, one rfft per frame: (1 + n_fft // 2, frames)."""
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * k / n_fft) for k in range(n_fft)])
    padded = np.concatenate([np.zeros(n_fft // 2), y, np.zeros(n_fft // 2)])
    columns = []
    for start in range(0, len(padded) - n_fft + 1, hop_length):
        columns.append(np.fft.rfft(padded[start : start + n_fft] * window))
    return np.array(columns).T


def librosa_mel(sr=16000, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) transcribed: Slaney's mel scale (linear below
    1 kHz, 200/3 Hz a mel; logarithmic above, 27 mels per factor 6.4), triangles between n_mels + 2 band
    edges, each scaled to unit area (norm "slaney"); float32 as librosa returns it."""

    linear, knee, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    knee_mel = knee / linear

    def hz_to_mel(hz):
        return hz / linear if hz < knee else knee_mel + np.log(hz / knee) / log_step

    def mel_to_hz(mel):
        return linear * mel if mel < knee_mel else knee * np.exp(log_step * (mel - knee_mel))

    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = np.array([mel_to_hz(m) for m in mels])
    bins = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    weights = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for i in range(n_mels):
        for j, f in enumerate(bins):
            rising = (f - edges[i]) / (edges[i + 1] - edges[i])
            falling = (edges[i + 2] - f) / (edges[i + 2] - edges[i + 1])
            weights[i, j] = max(0.0, min(rising, falling))
        weights[i] *= 2.0 / (edges[i + 2] - edges[i])
    return weights


def naive_ave_features(wav_path, encoder_state):
    """SPEC.md 'From a .wav to ave features', with librosa's and scipy's calls as upstream makes them
    (transcribed above: importing librosa compiles its numba functions, 20 CPU-s in a new venv)."""
    import torch.nn.functional as F

    wav, _ = librosa_load(wav_path)
    emphasised = preemphasis(wav)
    D = librosa_stft(emphasised, n_fft=800, hop_length=200)
    mel_basis = librosa_mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    S = 20 * np.log10(np.maximum(1e-5, np.dot(mel_basis, np.abs(D)))) - 20
    mel = np.clip((2 * 4) * ((S + 100) / 100) - 4, -4, 4).T
    n = int((mel.shape[0] - 16) / 80 * 25) + 2
    windows = []
    for k in range(n):
        s = int(80 * (k / 25))
        e = s + 16
        if e > mel.shape[0]:
            e = mel.shape[0]
            s = e - 16
        windows.append(mel[s:e, :].T[None])
    x = torch.FloatTensor(np.array(windows))
    blocks = [(1, 1, False), (1, 1, True), (1, 1, True), ((3, 1), 1, False), (1, 1, True), (1, 1, True),
              (3, 1, False), (1, 1, True), (1, 1, True), ((3, 2), 1, False), (1, 1, True), (1, 0, False), (1, 0, False)]
    sd = encoder_state
    with torch.no_grad():
        for i, (stride, pad, residual) in enumerate(blocks):
            p = f"{i}.conv_block."
            y = F.conv2d(x, sd[p + "0.weight"], sd[p + "0.bias"], stride=stride, padding=pad)
            y = F.batch_norm(y, sd[p + "1.running_mean"], sd[p + "1.running_var"], sd[p + "1.weight"], sd[p + "1.bias"], False, 0.0, 1e-5)
            x = F.relu(y + x) if residual else F.relu(y)
    out = x.reshape(x.shape[0], -1).numpy()
    return np.concatenate([out[:1], out, out[-1:]]), mel


def naive_hubert_features(wav_path, model_dir, clip_length=320 * 1000):
    """Upstream's data_utils/hubert.py, transcribed: the first channel of a 16 kHz wav, the processor's
    input values, clips of `clip_length` read with the 400 - 320 overlap, the remainder, an odd last
    row dropped, (frames, 2, 1024)."""
    import soundfile
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    speech, rate = soundfile.read(wav_path)
    assert rate == 16000
    if speech.ndim == 2:
        speech = speech[:, 0]
    processor = Wav2Vec2FeatureExtractor.from_pretrained(model_dir)
    model = HubertModel.from_pretrained(model_dir).eval()
    input_values_all = processor(speech, return_tensors="pt", sampling_rate=16000).input_values
    kernel = 400
    stride = 320
    num_iter = input_values_all.shape[1] // clip_length
    expected_T = (input_values_all.shape[1] - (kernel - stride)) // stride
    res_lst = []
    with torch.no_grad():
        for i in range(num_iter):
            if i == 0:
                start_idx = 0
                end_idx = clip_length - stride + kernel
            else:
                start_idx = clip_length * i
                end_idx = start_idx + (clip_length - stride + kernel)
            input_values = input_values_all[:, start_idx:end_idx]
            res_lst.append(model.forward(input_values).last_hidden_state[0])
        input_values = input_values_all[:, clip_length * num_iter:]
        if input_values.shape[1] >= kernel:
            res_lst.append(model(input_values).last_hidden_state[0])
    ret = torch.cat(res_lst, dim=0)
    assert ret.shape[0] == expected_T
    if ret.shape[0] % 2 == 1:
        ret = ret[:-1]
    return ret.reshape(-1, 2, 1024).numpy()
