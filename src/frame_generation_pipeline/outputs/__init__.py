"""Outputs: frames encoded into one H.264/AAC video, or written as numbered image files."""
