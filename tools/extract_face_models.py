"""Copy MediaPipe's face detector and face mesh out of a mediapipe 0.10.x wheel into prepare/data/.

The wheel is fetched once by hand and never installed (mediapipe itself is no dependency):

    python -m pip download mediapipe==0.10.21 --no-deps --only-binary=:all: -d /tmp/mediapipe
    python tools/extract_face_models.py /tmp/mediapipe/mediapipe-0.10.21-*.whl

The files are copied unchanged with the wheel's license; prepare/data/NOTICE records their sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "frame_generation_pipeline" / "prepare" / "data"
MEMBERS = {
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": "face_detection_full_range_sparse.tflite",
    "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="a mediapipe 0.10.x wheel")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        licenses = [name for name in wheel.namelist() if name.endswith(".dist-info/LICENSE")]
        for member, name in {**MEMBERS, licenses[0]: "LICENSE-mediapipe"}.items():
            data = wheel.read(member)
            (DATA / name).write_bytes(data)
            print(f"{name}  sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
