"""Local infrastructure: a real single-node Kafka (KRaft) from Maven Central jars (see README.md)."""
