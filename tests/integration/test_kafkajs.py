"""kafkajs 2.2.4 (Node.js, installed by .ci/system-deps) against a two-core broker: admin
createTopics and describeConfigs, produce with acks=all plain and gzip and with the idempotent
producer, consume everything back in a consumer group from the beginning, record by record and
exactly once, and the group's committed offsets are the partitions' ends."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from broker_proc import BrokerProcess

SCRIPT = Path(__file__).resolve().parent / "js" / "kafkajs_client.js"
COUNT = 40  # per producer run: 20 plain + 20 gzip, then 40 idempotent


@pytest.mark.timeout(120)
def test_kafkajs_admin_produce_and_group_consume(broker: BrokerProcess) -> None:
    run = subprocess.run(["node", str(SCRIPT), broker.bootstrap, "kafkajs-topic", str(COUNT)],
                         capture_output=True, text=True, timeout=100, cwd=SCRIPT.parent)
    assert run.returncode == 0, f"kafkajs failed: {run.stderr[-3000:]}\n{broker.log_tail()}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["created"] is True
    assert result["described"] == {"retention.ms": "86400000", "cleanup.policy": "delete"}
    sent, got = result["sent"], result["got"]
    assert len(sent) == 2 * COUNT
    assert sorted(g["value"] for g in got) == sorted(sent)  # every record, exactly once
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for g in got:
        by_partition[g["partition"]].append((g["offset"], g["value"]))
    # Values were sent alternating between the two partitions: each partition holds its share
    # in send order at offsets 0..n-1.
    for p in (0, 1):
        records = sorted(by_partition[p])
        assert [o for o, _v in records] == list(range(COUNT))
        assert [v for _o, v in records] == sent[p::2]
    committed = {int(c["partition"]): int(c["offset"]) for c in result["committed"]}
    assert committed == {0: COUNT, 1: COUNT}
