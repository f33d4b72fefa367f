"""One partition, sans-IO: what it is asked and answers (`api`), Raft's log over the partition's
storage log (`raft_log`: one Kafka batch per entry), and the replica itself (`partition`: Raft
consensus, producer state, timestamps, read bounds)."""
