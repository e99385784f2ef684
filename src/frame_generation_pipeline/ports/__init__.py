"""Ports: what port authors check their renderer against (reference bundles and their verification)."""
