"""generate_video: decoded back with PyAV, checked for streams, frames, duration, quality, safety."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline, TemplateSet, files
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.errors import EncoderError, OutputError
from frame_generation_pipeline.files import atomic_file
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.options import RenderOptions
from frame_generation_pipeline.outputs.video import VideoEncoder, encode_frames
from frame_generation_pipeline.render.blend import FEATHER


@pytest.fixture(scope="module")
def pipeline(checkpoints):
    return FrameGenerationPipeline(checkpoints["ave"], mode="ave", device="cpu", batch_size=4)


def decode(path):
    with av.open(str(path)) as container:
        video, audio = container.streams.video, container.streams.audio
        info = {"video_codecs": [s.codec_context.name for s in video], "audio_codecs": [s.codec_context.name for s in audio],
                "rate": float(video[0].average_rate), "sample_rate": audio[0].rate if audio else None}
        info["frames"] = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0)) if info["sample_rate"] else 0
    info["audio_seconds"] = samples / info["sample_rate"] if info["sample_rate"] else 0.0
    return info


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("audio", ["long", "short"])
def test_one_h264_and_one_aac_stream_with_exact_length(pipeline, features, templates_640, speech, tmp_path, audio):
    out = tmp_path / "out.mp4"
    assert pipeline.generate_video(features["ave"], templates_640, speech[audio], out) == str(out)
    info = decode(out)
    assert info["video_codecs"] == ["h264"] and info["audio_codecs"] == ["aac"]
    assert len(info["frames"]) == 7 and info["rate"] == 25.0
    assert info["frames"][0].shape == (480, 640, 3)
    assert abs(info["audio_seconds"] - 7 / 25) <= 1 / 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert (out.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.parametrize("proc", [True, False], ids=["proc", "probe"])
def test_the_umask_is_read_without_being_changed(monkeypatch, proc):
    """os.umask(0) for a moment would give another thread's new file mode 0666: read it from /proc or a probe."""
    set_umask, read_text = os.umask, Path.read_text
    if not proc:  # a system without /proc/self/status

        def no_proc(path, *args, **kwargs):
            if str(path) == "/proc/self/status":
                raise FileNotFoundError(path)
            return read_text(path, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", no_proc)
    previous = set_umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("the umask was changed to read it"))
        assert files._umask() == 0o027
    finally:
        set_umask(previous)


def test_frames_are_in_order_and_close_to_lossless(pipeline, features, templates_640, speech, tmp_path):
    out = tmp_path / "out.mp4"
    pipeline.generate_video(features["ave"], templates_640, speech["long"], out, use_parsing=True)
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    lossless = list(pipeline.generator.iter_frames(templates, AudioFeatures.load(features["ave"], "ave"), blend=FEATHER))
    decoded = decode(out)["frames"]
    for i, frame in enumerate(decoded):
        scores = [psnr(frame, other) for other in lossless]
        assert scores[i] >= 32.0, f"frame {i}: {scores[i]:.1f} dB"
        assert int(np.argmax(scores)) == i or scores[i] == max(scores), f"frame {i} is out of order"


def test_wenet_defaults_to_20_fps_and_fps_can_be_set(checkpoints, exports, features, templates_640, speech, tmp_path):
    # the session's export (the template cache's graphs of wenet would be 10 CPU-s more)
    wenet = FrameGenerationPipeline(checkpoints["wenet"], mode="wenet", device="cpu", batch_size=4, onnx_path=exports["wenet"])
    wenet.generate_video(features["wenet"], templates_640, speech["long"], tmp_path / "w.mp4", preset="ultrafast")
    info = decode(tmp_path / "w.mp4")
    assert info["rate"] == 20.0 and len(info["frames"]) == 7 and abs(info["audio_seconds"] - 7 / 20) <= 1 / 20
    wenet.video(tmp_path / "f.mp4", templates_640, speech["long"], features["wenet"],
                options=RenderOptions(fps=10, preset="ultrafast", max_frames=2))
    info = decode(tmp_path / "f.mp4")
    assert info["rate"] == 10.0 and len(info["frames"]) == 2


def test_odd_frame_sizes_are_padded_to_even(checkpoints, features, speech, tmp_path):
    folder = synthetic.make_templates(tmp_path / "odd", 3, 321, 241, parsing=False)
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", batch_size=4)
    pipeline.generate_video(features["ave"], folder, speech["long"], tmp_path / "o.mp4", preset="ultrafast")
    assert decode(tmp_path / "o.mp4")["frames"][0].shape == (242, 322, 3)


def test_ffmpeg_failure_carries_ffmpegs_message_and_leaves_nothing(speech, tmp_path):
    # ffmpeg may die before the 30 frames are queued (write says it stopped) or after (close says it failed)
    out = tmp_path / "clip.mp4"
    with pytest.raises(EncoderError, match="ffmpeg (failed|stopped) .*Invalid argument") as info:
        with atomic_file(out) as temporary, VideoEncoder(temporary, 64, 48, 25, speech["long"], preset="nosuchpreset",
                                                         name=out) as encoder:
            for _ in range(30):
                encoder.write(np.zeros((48, 64, 3), np.uint8))
    assert f"while writing {out}:" in str(info.value) and "partial" not in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["clip.txt", "clip", "clip.nosuchformat"])
def test_an_output_that_is_no_video_container_is_refused_before_rendering(pipeline, features, templates_640, speech, tmp_path, name):
    with pytest.raises(OutputError, match=r"has (suffix .*|no suffix): expected a video file ending in \.mp4, \.m4v, \.mov, \.mkv"):
        pipeline.video(tmp_path / name, templates_640, speech["long"], features["ave"])
    assert list(tmp_path.iterdir()) == []


def test_mkv_holds_the_same_streams(pipeline, features, templates_640, speech, tmp_path):
    pipeline.video(tmp_path / "out.mkv", templates_640, speech["long"], features["ave"],
                   options=RenderOptions(preset="ultrafast", max_frames=3))
    info = decode(tmp_path / "out.mkv")
    assert info["video_codecs"] == ["h264"] and info["audio_codecs"] == ["aac"] and len(info["frames"]) == 3


class _Interrupting(InferenceModel):
    """A model that renders a few batches, then behaves as if Ctrl-C was pressed."""

    name = "interrupting"

    def __init__(self, model, after):
        super().__init__(model.mode, streams=model.streams)
        self.model, self.calls, self.after = model, 0, after

    def run(self, images, audio):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.model.run(images, audio)


def _children():
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found += (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return found


def test_interrupt_ends_ffmpeg_and_keeps_the_old_file(checkpoints, features, templates_640, speech, tmp_path):
    from frame_generation_pipeline import FrameGenerator

    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu")
    pipeline.generator = FrameGenerator(_Interrupting(pipeline.model, after=3), batch_size=1)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous good video")
    with pytest.raises(KeyboardInterrupt):
        pipeline.generate_video(features["ave"], templates_640, speech["long"], out)
    assert out.read_bytes() == b"the previous good video"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert _children() == [], "ffmpeg must not outlive the interrupted render"


def _numbered(count, width=64, height=48):
    """Frames of one size, each a different flat grey, so their order can be read back."""
    for i in range(count):
        yield np.full((height, width, 3), 40 + 40 * i, np.uint8)


def test_encode_frames_sizes_the_video_by_the_first_frame_and_counts_what_it_wrote(speech, tmp_path):
    assert encode_frames(_numbered(4, 66, 50), tmp_path / "out.mp4", 25, speech["long"], preset="ultrafast",
                         frame_count=4) == 4
    info = decode(tmp_path / "out.mp4")
    assert [frame.shape for frame in info["frames"]] == [(50, 66, 3)] * 4 and info["audio_codecs"] == ["aac"]
    assert [round(frame.mean() / 40) for frame in info["frames"]] == [1, 2, 3, 4]
    assert abs(info["audio_seconds"] - 4 / 25) <= 1 / 25


def test_the_video_says_its_colours_are_bt601_in_limited_range(speech, tmp_path):
    """ffmpeg converts the frames with BT.601 in limited range: the stream says so, matrix, primaries and
    transfer alike (unspecified ones, players take BT.709 for HD; the primaries and transfer were)."""
    encode_frames(_numbered(2, 66, 50), tmp_path / "out.mp4", 25, speech["long"], preset="ultrafast", frame_count=2)
    with av.open(str(tmp_path / "out.mp4")) as container:
        video = container.streams.video[0].codec_context
        tags = (video.colorspace, video.color_range, video.color_primaries, video.color_trc)
    smpte170m, limited = 6, 1  # FFmpeg's AVCOL_SPC/PRI/TRC_SMPTE170M and AVCOL_RANGE_MPEG
    assert tags == (smpte170m, limited, smpte170m, smpte170m)


def test_encode_frames_kills_ffmpeg_when_the_frames_fail_and_refuses_none(tmp_path):
    def failing():
        yield from _numbered(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_frames(failing(), tmp_path / "out.mp4", 25)
    assert _children() == [], "ffmpeg must not outlive frames that failed"
    with pytest.raises(EncoderError, match=f"no frames to write to {tmp_path / 'named.mp4'}"):
        encode_frames(iter([]), tmp_path / "temporary.mp4", 25, name=tmp_path / "named.mp4")
    assert not (tmp_path / "temporary.mp4").exists()
    with pytest.raises(EncoderError, match=r"frame 1 is \(48, 32, 3\) uint8, expected \(48, 64, 3\) uint8"):
        encode_frames([np.zeros((48, 64, 3), np.uint8), np.zeros((48, 32, 3), np.uint8)], tmp_path / "sizes.mp4", 25)
    assert _children() == []


def test_the_writer_needs_no_wake_up_to_finish_or_abort(tmp_path):
    """A stop signal raised in the main thread inside a queue operation can cost the writer thread its
    wake-up (a SIGTERM once left `frame-gen live` waiting forever on a writer waiting for a frame): with
    every wake-up lost, closing still writes the video and aborting still ends, each within a bound."""
    import threading

    def bounded(action) -> bool:
        worker = threading.Thread(target=action, daemon=True)
        worker.start()
        worker.join(20)
        return not worker.is_alive()

    for name, finish in (("closed.mp4", VideoEncoder.close), ("aborted.mp4", VideoEncoder.abort)):
        encoder = VideoEncoder(tmp_path / name, 64, 48, 25)
        encoder._queue.not_empty.notify = lambda n=1: None  # every wake-up of the waiting writer lost
        for frame in _numbered(3):
            encoder.write(frame)
        assert bounded(lambda encoder=encoder, finish=finish: finish(encoder)), f"{name}: the encoder hangs"
        assert not encoder._writer.is_alive() and _children() == []
    assert len(decode(tmp_path / "closed.mp4")["frames"]) == 3


MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from frame_generation_pipeline import FrameGenerator, TemplateSet
    from frame_generation_pipeline.contract import get_mode
    from frame_generation_pipeline.files import atomic_file
    from frame_generation_pipeline.inputs.features import AudioFeatures
    from frame_generation_pipeline.models.backends.base import InferenceModel
    from frame_generation_pipeline.outputs.video import VideoEncoder, encode_frames

    class Echo(InferenceModel):  # stands in for the network: memory, not arithmetic, is measured here
        name = "echo"
        def run(self, images, audio):
            return images[:, :3].copy()

    folder, audio, frames, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    features = AudioFeatures(np.zeros((frames, 512), np.float32), "ave")
    generator = FrameGenerator(Echo(get_mode("ave")), batch_size=4)
    with atomic_file(out) as temporary, VideoEncoder(temporary, 1920, 1080, 25, audio, preset="ultrafast", frame_count=frames) as encoder:
        for frame in generator.iter_frames(TemplateSet.from_folder(folder), features):
            encoder.write(frame)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


def test_peak_memory_does_not_grow_with_video_length(speech, tmp_path):
    folder = synthetic.make_templates(tmp_path / "hd", 6, 1920, 1080, parsing=False)
    peaks = {}
    for frames in (20, 60):  # 40 frames more: 240 MB more if frames were kept
        result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(folder), str(speech["long"]), str(frames),
                                 str(tmp_path / f"{frames}.mp4")], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        peaks[frames] = int(result.stdout.strip())
    assert decode(tmp_path / "60.mp4")["frames"].__len__() == 60
    assert peaks[60] - peaks[20] < 100, f"peak RSS grew from {peaks[20]} MB to {peaks[60]} MB (a frame is 6 MB)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are a Linux setting")
def test_frames_reach_ffmpeg_through_a_large_pipe(tmp_path):
    import fcntl

    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < 1 << 20:
        pytest.skip("this machine caps pipes below 1 MiB")
    with VideoEncoder(tmp_path / "out.mp4", 64, 48, 25) as encoder:
        size = fcntl.fcntl(encoder._process.stdin.fileno(), fcntl.F_GETPIPE_SZ)
        encoder.write(np.zeros((48, 64, 3), np.uint8))
    assert size == 1 << 20
    assert len(decode(tmp_path / "out.mp4")["frames"]) == 1
