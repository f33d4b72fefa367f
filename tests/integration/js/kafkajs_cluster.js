// kafkajs against a redshank cluster, driven by tests/integration/test_cluster_clients.py.
// Usage: node kafkajs_cluster.js BOOTSTRAP[,BOOTSTRAP...] TOPIC PARTITIONS COUNT
// Produces COUNT records with acks=all and COUNT with an idempotent producer (partition i %
// PARTITIONS; kafkajs routes each to its leader through Metadata), then reads every partition
// back from offset 0 without a consumer group: kafkajs's consumer always joins one, so this
// uses kafkajs's own cluster (Metadata, leader lookup) and Fetch (request and record decoding)
// under the consumer. Prints one JSON line: what was produced, what was read, the metadata.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, partitionsArg, countArg] = process.argv.slice(2);
  const partitions = Number(partitionsArg);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: "redshank-kafkajs-cluster", brokers: bootstrap.split(","),
                            logLevel: logLevel.NOTHING, retry: { retries: 8 } });
  const sent = [];
  const producer = kafka.producer();
  await producer.connect();
  const plain = [];
  for (let i = 0; i < count; i++) {
    const value = `js-plain-${i}`;
    plain.push({ key: `k${i}`, value, partition: i % partitions });
    sent.push(value);
  }
  await producer.send({ topic, acks: -1, messages: plain });
  await producer.disconnect();

  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await idempotent.connect();
  const idem = [];
  for (let i = 0; i < count; i++) {
    const value = `js-idem-${i}`;
    idem.push({ value, partition: i % partitions });
    sent.push(value);
  }
  await idempotent.send({ topic, acks: -1, messages: idem });
  await idempotent.disconnect();

  // No group: kafkajs's cluster (the consumer's Metadata and broker pool) and Broker.fetch.
  const create = Object.getOwnPropertySymbols(kafka)
    .find((s) => s.toString().includes("createCluster"));
  const cluster = kafka[create]({ allowAutoTopicCreation: false });
  await cluster.connect();
  await cluster.addTargetTopic(topic);
  const metadata = cluster.findTopicPartitionMetadata(topic);
  const got = [];
  const deadline = Date.now() + 30000;
  for (let p = 0; p < partitions; p++) {
    let offset = 0;
    let end = -1;
    while (end < 0 || offset < end) {
      if (Date.now() > deadline) throw new Error(`read of partition ${p} stuck at ${offset}`);
      const leaders = cluster.findLeaderForPartitions(topic, [p]);
      const nodeId = Object.keys(leaders)[0];
      const broker = await cluster.findBroker({ nodeId });
      const { responses } = await broker.fetch({
        maxWaitTime: 100, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 1,
        topics: [{ topic, partitions: [{ partition: p, fetchOffset: String(offset),
                                         maxBytes: 1 << 20 }] }],
      });
      for (const part of responses[0].partitions) {
        if (part.errorCode !== 0) throw new Error(`fetch error ${part.errorCode} on ${p}`);
        end = Number(part.highWatermark);
        for (const m of part.messages) {
          if (Number(m.offset) < offset) continue;
          got.push({ partition: p, offset: Number(m.offset), value: m.value.toString() });
          offset = Number(m.offset) + 1;
        }
      }
    }
  }
  await cluster.disconnect();
  console.log(JSON.stringify({ sent, got, metadata }));
}

main().then(() => process.exit(0), (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
