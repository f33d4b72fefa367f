"""Benchmarks (`redshank bench NAME`): each prints one JSON object as its last line."""

__all__: list[str] = []
