// kafkajs against a redshank broker, driven by tests/integration/test_kafkajs.py.
// Usage: node kafkajs_client.js BOOTSTRAP TOPIC COUNT
// Creates TOPIC (2 partitions), produces COUNT records with acks=all (plain and gzip) and COUNT
// with an idempotent producer, then consumes them back in a consumer group from the beginning,
// and prints one JSON line: what was produced, what was consumed, and the admin answers.
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  const kafka = new Kafka({ clientId: "redshank-kafkajs", brokers: [bootstrap],
                            logLevel: logLevel.NOTHING, retry: { retries: 5 } });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 2, configEntries: [{ name: "retention.ms", value: "86400000" }] }],
    waitForLeaders: true,
  });
  const configs = await admin.describeConfigs({
    resources: [{ type: 2, name: topic, configNames: ["retention.ms", "cleanup.policy"] }],
    includeSynonyms: false,
  });
  const described = {};
  for (const entry of configs.resources[0].configEntries) {
    described[entry.configName] = entry.configValue;
  }

  const sent = [];
  const producer = kafka.producer();
  await producer.connect();
  for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
    const messages = [];
    for (let i = 0; i < count / 2; i++) {
      const value = `plain-${compression}-${i}`;
      messages.push({ key: `k${i}`, value, partition: i % 2 });
      sent.push(value);
    }
    await producer.send({ topic, acks: -1, compression, messages });
  }
  await producer.disconnect();

  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await idempotent.connect();
  const messages = [];
  for (let i = 0; i < count; i++) {
    const value = `idem-${i}`;
    messages.push({ value, partition: i % 2 });
    sent.push(value);
  }
  await idempotent.send({ topic, acks: -1, messages });
  await idempotent.disconnect();

  const got = [];
  const consumer = kafka.consumer({ groupId: `${topic}-group`, sessionTimeout: 10000,
                                    heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(), 30000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), value: message.value.toString() });
        if (got.length >= sent.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.commitOffsets([]);
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] });
  await admin.disconnect();
  console.log(JSON.stringify({ created, described, sent, got, committed: offsets[0].partitions }));
}

main().then(() => process.exit(0), (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
