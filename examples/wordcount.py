"""Word count as a two-stage pipeline on an embedded Redshank runtime.

Stage 1, one `Splitter` per core: counts the words of the lines it is told. Stage 2, one
`Aggregator` per core: owns the words whose CRC32 falls on its core. At the end each splitter
hands its partial counts to the owning aggregators (cross-core asks), and the program sums them.

    program --lines (round robin)--> Splitter@0 ... Splitter@N-1
    Splitter@k --partial counts, by crc32(word) % N--> Aggregator@0 ... Aggregator@N-1

Run: python3 examples/wordcount.py [--cores N] [--lines L] [--node-dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import random
import zlib
from typing import Any

from redshank.actors import embed

WORDS = ["actor", "core", "ring", "log", "offset", "batch", "record", "kafka", "raft", "leader",
         "replica", "segment", "flush", "commit", "fetch", "produce", "consumer", "partition",
         "topic", "broker"]


def owner(word: str, cores: int) -> int:
    # A stable hash: str hashes differ between processes.
    return zlib.crc32(word.encode()) % cores


class Splitter(embed.LoopActor):
    """Stage 1: counts words locally; on "flush" sends each aggregator its share."""

    def __init__(self, cores: int) -> None:
        super().__init__()
        self.cores = cores
        self.counts: collections.Counter[str] = collections.Counter()

    def on_receive(self, message: Any) -> Any:
        if message == "flush":
            shares: list[dict[str, int]] = [{} for _ in range(self.cores)]
            for word, n in self.counts.items():
                shares[owner(word, self.cores)][word] = n
            self.counts.clear()
            # Answer once every aggregator has its share (ask, not tell: the program's next
            # ask to an aggregator travels on another ring, so only a reply orders them).
            asks = [embed.ref(c, "aggregator").ask(s, block=False) for c, s in enumerate(shares)]
            return asks[0].join(*asks[1:])
        for line in message:
            self.counts.update(line.split())
        return None


class Aggregator(embed.LoopActor):
    """Stage 2: sums the partial counts of the words this core owns."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: collections.Counter[str] = collections.Counter()

    def on_receive(self, message: Any) -> Any:
        if message == "totals":
            return dict(self.totals)
        self.totals.update(message)
        return len(message)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--node-dir", help="watch it with `redshank actors --node-dir DIR`")
    args = parser.parse_args()
    rng = random.Random(7)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
             for _ in range(args.lines)]

    with embed.Runtime(cores=args.cores, node_dir=args.node_dir) as rt:
        splitters = [rt.spawn(c, "splitter", Splitter, args.cores) for c in range(args.cores)]
        aggregators = [rt.spawn(c, "aggregator", Aggregator) for c in range(args.cores)]
        chunk = 500
        for i in range(0, len(lines), chunk):  # fan out, round robin, 500 lines a message
            splitters[(i // chunk) % args.cores].tell(lines[i : i + chunk])
        for s in splitters:
            s.ask("flush")
        totals: collections.Counter[str] = collections.Counter()
        for a in aggregators:
            totals.update(a.ask("totals"))

    expected = collections.Counter(word for line in lines for word in line.split())
    for word, n in totals.most_common(5):
        print(f"{word:10} {n}")
    print(f"words {sum(totals.values())} distinct {len(totals)} "
          f"matches_single_process {totals == expected}")


if __name__ == "__main__":
    main()
