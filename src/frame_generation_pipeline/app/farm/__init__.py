"""The render farm: many jobs, and long videos split in chunks, across Ray workers (frame-gen batch)."""
