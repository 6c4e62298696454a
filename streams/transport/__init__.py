"""Kafka and Faust plumbing of the agents: raw messages and dead letters, ready batches, the lean consumer
transport, the publisher that acks input after its outputs are stored, producer defaults, Faust tables."""
