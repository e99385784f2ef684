"""Live: speech pushed in chunks becomes frames as soon as their audio window is complete (docs/live.md)."""
