"""A core's topic lookups (`CoreServices`, issue 12): the controller's answer refreshes the core's
topic cache; while the controller cannot answer (its core died, is restarting, or is stopped) the
core answers from that cache, and what it does not hold is not said to be missing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pykka

from redshank.actors.broker import BrokerConfig
from redshank.actors.frontend import CoreServices
from redshank.actors.frontend.topics import metadata
from redshank.actors.runtime import CoreDiedError
from redshank.actors.topic_controller import Lookup, LookupResult
from redshank.cluster.kafka import TopicInfo
from redshank.protocol.error_codes import ErrorCode
from redshank.protocol.messages.metadata import MetadataRequest, MetadataRequestTopic

A = TopicInfo("a", uuid.UUID(int=1), (0, 1))
B = TopicInfo("b", uuid.UUID(int=2), (1,))


class _Controller:
    """Stands for `router.ref(0, CONTROLLER)`: `answer(msg)` is the reply (or raises)."""

    def __init__(self, answer: Callable[[Lookup], Any]) -> None:
        self.answer = answer
        self.asked: list[Lookup] = []

    def ask(self, msg: Lookup, block: bool = True) -> asyncio.Future[Any]:
        self.asked.append(msg)
        fut = asyncio.get_running_loop().create_future()
        try:
            fut.set_result(self.answer(msg))
        except TimeoutError:
            pass  # never answers (a stopped core 0)
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def _core(controller: _Controller, down: frozenset[int] = frozenset()) -> CoreServices:
    router = SimpleNamespace(core=1, ncores=2, ref=lambda _core, _name: controller)
    ctx = SimpleNamespace(core=1, router=router, loop=asyncio.get_running_loop(),
                          core_up=lambda c: c not in down)
    config = BrokerConfig("127.0.0.1", 0, "127.0.0.1", 0, "/nonexistent",
                          controller_timeout_s=0.05, auto_create_topics_per_request=7)
    return CoreServices(config, cast(Any, ctx))


def _run(main: Callable[[], Any]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))


def _table(msg: Lookup) -> LookupResult:
    table = {"a": A, "b": B}
    names = msg.names if msg.names is not None else tuple(table)
    return LookupResult("cid", {n: table[n] for n in names if n in table}, frozenset())


def _raise(exc: BaseException) -> Callable[[Lookup], Any]:
    def answer(_msg: Lookup) -> Any:
        raise exc
    return answer


def test_answers_fill_the_cache_and_unreachable_controller_answers_from_it() -> None:
    async def main() -> None:
        controller = _Controller(_table)
        core = _core(controller)
        await core.lookup(None)
        assert core.topics == {"a": A, "b": B} and core.cluster_id == "cid"
        assert controller.asked[0].max_create == 7  # the configured auto-create cap
        for why in (CoreDiedError(0), pykka.ActorDeadError("no actor 'topics' on core 0"),
                    TimeoutError()):
            controller.answer = _raise(why)
            named = await core.lookup(("a", "c"))
            assert (named.topics, named.not_ready, named.cluster_id) == (
                {"a": A}, frozenset({"c"}), "cid")
            everything = await core.lookup(None)
            assert everything.topics == {"a": A, "b": B} and not everything.not_ready
            infos, unsure = await core.topic_infos(["a", "c"])
            assert infos == {"a": A, "c": None} and unsure == frozenset({"c"})

    _run(main)


def test_what_the_controller_says_is_gone_leaves_the_cache() -> None:
    async def main() -> None:
        core = _core(_Controller(_table))
        core.topics["gone"] = TopicInfo("gone", uuid.UUID(int=9), (0,))
        core.topics["also-gone"] = TopicInfo("also-gone", uuid.UUID(int=8), (0,))
        await core.lookup(("gone",))
        assert "gone" not in core.topics and "also-gone" in core.topics
        await core.lookup(None)
        assert set(core.topics) == {"a", "b"}

    _run(main)


def test_metadata_while_core_0_is_down() -> None:
    async def main() -> None:
        controller = _Controller(_table)
        core = _core(controller, down=frozenset({0}))
        await core.lookup(("a",))
        controller.answer = _raise(CoreDiedError(0))
        req = MetadataRequest(topics=(MetadataRequestTopic(name="a"),
                                      MetadataRequestTopic(name="new")),
                              allow_auto_topic_creation=True)
        resp = await metadata(core, req, 12)
        by = {t.name: t for t in resp.topics}
        assert by["new"].error_code == ErrorCode.LEADER_NOT_AVAILABLE
        assert by["a"].error_code == ErrorCode.NONE
        assert [(p.error_code, p.leader_id) for p in by["a"].partitions] == [
            (ErrorCode.LEADER_NOT_AVAILABLE, -1), (ErrorCode.NONE, 0)]
        assert resp.cluster_id == "cid"
        everything = await metadata(core, MetadataRequest(topics=None), 12)
        assert [t.name for t in everything.topics] == ["a"]  # all this core knows

    _run(main)
