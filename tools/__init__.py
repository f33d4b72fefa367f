"""Command-line tools: the `redshank` CLI, benchmarks, code generation."""

__all__: list[str] = []
