"""The per-core runtime and the actors that host the cluster and storage layers."""

__all__: list[str] = []
