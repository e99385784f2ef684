"""`frame-gen live`: the simulated viewer writes the video, frames and report of what a viewer sees."""

from __future__ import annotations

import json
import math
import time

import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.files import MANIFEST
from frame_generation_pipeline.live.slot import FPS

from .helpers import cli_status


def test_live_command_writes_what_a_viewer_sees(checkpoints, encoder_path, tmp_path_factory, tmp_path):
    import av

    templates = synthetic.make_templates(tmp_path_factory.mktemp("live") / "tpl", 5, 200, 160, parsing=False)
    wav = write_speech_like_wav(tmp_path / "s.wav", 0.4)
    started = time.monotonic()
    status = cli_status(["live", "--quiet", "--checkpoint", checkpoints["ave"], "--template-dir", templates,
                         "--audio-encoder", encoder_path, "--audio", wav, wav, "--gap-seconds", "0.2", "--output",
                         tmp_path / "live.mp4", "--frames-dir", tmp_path / "frames", "--report", tmp_path / "r.json"])
    elapsed = time.monotonic() - started
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    # 0.4 s of speech: 9 frames, 20 with its run into silence (until the mouth rests)
    assert report["frames"] == 20 + 5 + 20 and report["speech_frames"] == 40 and report["dropped_frames"] == 0
    assert report["idle_frames"] == report["idle_rendered"] == 5 and report["idle_raw"] == 0, "no raw template shown"
    utterances = report["utterances"]
    assert [(u["start_slot"], u["frames"], u["dropped"], u["policy"], u["start_delay_s"]) for u in utterances] == \
        [(0, 20, 0, "drop", 0.0), (25, 20, 0, "drop", 0.0)], "a simulation starts each utterance at its turn, after the gap"
    assert report["first_frame_latency_s"] == utterances[0]["first_frame_latency_s"] and report["lookahead_s"] == 0.45
    assert all(0 < u["first_frame_latency_s"] <= elapsed for u in utterances), "measured within the run"
    # the speed is an average of batches' seconds per frame, each batch timed within the run: at least 1 / elapsed
    assert 1 / elapsed <= report["render_fps"] < math.inf and report["realtime_factor"] == pytest.approx(report["render_fps"] / FPS)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 45 and (tmp_path / "frames" / MANIFEST).is_file()
    with av.open(str(tmp_path / "live.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert sum(1 for _ in container.decode(video=0)) == 45
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "live.mp4", "r.json", "s.wav"]
