"""The demo: generated templates, speech and random-weight checkpoints, rendered into a video."""
