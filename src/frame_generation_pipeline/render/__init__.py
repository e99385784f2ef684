"""Render: the per-frame pixel arithmetic and the generator that runs it around the network."""
