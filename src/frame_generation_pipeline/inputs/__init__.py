"""Inputs: the template folder (frames, landmarks, parsing masks) and audio feature files."""
