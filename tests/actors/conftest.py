"""Actor tests start actors on throwaway loops: forget them between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _clean_actor_registry() -> Iterator[None]:
    yield
    for ref in pykka.ActorRegistry.get_all():
        pykka.ActorRegistry.unregister(ref)
