"""Benchmarks that print ratios to a measured floor (time / required forward-backward passes)."""
