"""`frame-gen prepare` refuses what cannot make a template folder: one `error:` line naming the file and
the frames, exit status 2, and no folder. The videos are drawn (256x192, 25 fps, 4 to 10 frames) and
run in this process: about 4 CPU s in all."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import cli_status
from .prepare_videos import encode, face_frame

DATA = Path(__file__).resolve().parent / "data"
CENTRE = ((0.5, 0.3, 0.5),)

#: name -> (the video's faces per frame k, extra arguments, what the error line says)
FACE_CASES = {
    "no face until frame 5": (lambda k: CENTRE if k >= 5 else (), [], "no face found in frames 0-4:"),
    "a face cut off by the left edge": (lambda k: ((0.12, 0.3, 0.5),), [], "face cut off by the frame's edge in frames 0-3"),
    "a face cut off by the bottom edge": (lambda k: ((0.5, 0.5, 0.5),), [], "face cut off by the frame's edge in frames 0-3"),
    "a face too small": (lambda k: ((0.5, 0.3, 0.3),), [], "face too small (crop box under 64 pixels) in frames 0-3"),
    "two faces but --face 3": (lambda k: ((0.27, 0.3, 0.45), (0.75, 0.35, 0.4)), ["--face", "3"],
                               "fewer faces than --face asks for in frames 0-3"),
}


def _refused(argv: list, capsys, output: Path, *expected: str) -> str:
    assert cli_status(["prepare", *argv, "--output", output]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for words in expected:
        assert words in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", list(FACE_CASES))
def test_frames_without_a_usable_face_are_named_and_no_folder_is_written(case, tmp_path, capsys):
    faces, extra, expected = FACE_CASES[case]
    video = encode([face_frame(k, faces(k)) for k in range(10 if "until" in case else 4)], tmp_path / "clip.mp4", rate=25)
    _refused([video, *extra], capsys, tmp_path / "out", f"{video}: {expected}")
    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary folder left either


def test_several_faces_follow_the_largest_and_say_so(tmp_path, capsys):
    video = encode([face_frame(k, ((0.27, 0.3, 0.45), (0.75, 0.35, 0.4))) for k in range(3)], tmp_path / "two.mp4", rate=25)
    assert cli_status(["prepare", video, "--output", tmp_path / "out"]) == 0
    assert "frame 0 shows 2 faces: following the largest (face 1 from the left); --face N picks another" in capsys.readouterr().err
    assert cli_status(["prepare", video, "--output", tmp_path / "out", "--face", "2", "--quiet"]) == 0  # ours: replaced
    first = (tmp_path / "out" / "landmarks" / "0.lms").read_text().split()
    assert float(first[2 * 1]) > 256 / 2  # point 1 of the face on the right


@pytest.mark.parametrize("case", ["missing", "empty", "text", "audio only", "a folder", "start past the end"])
def test_an_unreadable_video_is_one_line_before_any_work(case, tmp_path, capsys):
    video, extra = tmp_path / "clip.mp4", []
    expected = {"missing": "video file not found", "empty": "not usable as a video: the file is empty",
                "text": "not usable as a video: cannot be read",
                "audio only": "not usable as a video: it has no video stream", "a folder": "is a folder, expected a video file",
                "start past the end": "--start 9 is past the video's end (0.16 seconds)"}[case]
    if case == "empty":
        video.write_bytes(b"")
    elif case == "text":
        video.write_text("not a video\n")
    elif case == "audio only":
        video = DATA / "talk_hb_6s.wav"
    elif case == "a folder":
        video.mkdir()
    elif case == "start past the end":
        encode([face_frame(k) for k in range(4)], video, rate=25)
        extra = ["--start", "9"]
    _refused([video, *extra], capsys, tmp_path / "out", f"error: {video}: {expected}")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_of_someone_elses_is_refused_and_left_alone(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    _refused([DATA / "talk_hb_6s.wav"], capsys, tmp_path / "mine", "holds 'notes.txt', which this command did not write")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("argv, expected", [(["--fps", "30"], "argument --fps: invalid choice: 30"),
                                            (["--face", "0"], "argument --face: must be at least 1"),
                                            (["--duration", "0"], "argument --duration")])
def test_bad_arguments_are_one_line(argv, expected, tmp_path, capsys):
    _refused([tmp_path / "clip.mp4", *argv], capsys, tmp_path / "out", expected)
