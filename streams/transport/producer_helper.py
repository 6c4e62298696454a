"""A small public helper for gateways that publish their requests to the pipeline.

Example::

    from streams.transport.producer_helper import RequestProducer

    with RequestProducer() as gw:          # Kafka settings from PRESERVE_KAFKA__* (or pass bootstrap=...)
        gw.send("req-1", service="llama-2-7b", prompt_tokens=812, prompt="Summarise ...")

Every event is validated against :class:`streams.records.RequestEvent` before it is sent (a bad event raises
``InvalidEvent`` at the gateway, not in the pipeline) and keyed by service, so one router owns each service.
The JSON Schema of the event (``preserve schemas``) is in ``schemas/requests.schema.json`` for non-Python gateways.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from confluent_kafka import Producer

from streams.records import RequestEvent, parse_event
from streams.settings import KafkaSettings, load_settings

__all__ = ["RequestProducer", "PRODUCER_DEFAULTS"]

# librdkafka's default partitioner (CRC32) puts a key on another partition than the Java client and aiokafka
# (murmur2) do. Faust's tables produce with aiokafka; every confluent-kafka producer of the pipeline must use
# murmur2 too, or a service's requests, routes and instance events land on different partition numbers and a
# worker that owns one service's requests never sees its fleet.
# linger.ms: how long a record may wait for others to share its request. Every ms of it is a ms of decision latency
# (budget: p99 20 ms from the gateway's send to the RouteDecision), and librdkafka still fills batches at high
# rates while earlier requests are in flight, so 1 ms costs no throughput that the pipeline could use.
# acks=all + idempotence: a record counts as sent only once every in-sync replica has it (at least
# min.insync.replicas = 2 on a 3-node cluster), so a leader that dies right after acknowledging loses nothing, and
# the retries that follow a leader change never duplicate or reorder a partition's records.
PRODUCER_DEFAULTS: dict[str, Any] = {"partitioner": "murmur2_random", "linger.ms": 1, "enable.idempotence": True,
                                     "acks": "all"}


class RequestProducer:
    """Validating, service-keyed producer of RequestEvents.

    :param bootstrap: Kafka bootstrap servers; default from the settings (``PRESERVE_KAFKA__BOOTSTRAP_SERVERS``).
    :param kafka: full Kafka settings (SASL/SSL); overrides ``bootstrap``.
    :param producer_config: extra librdkafka settings (e.g. ``{"linger.ms": 20}``).
    """

    def __init__(self, bootstrap: str | None = None, kafka: KafkaSettings | None = None,
                 producer_config: dict[str, Any] | None = None) -> None:
        k = kafka or load_settings().kafka
        if bootstrap is not None and kafka is None:
            k = k.model_copy(update={"bootstrap_servers": bootstrap})
        self.topic = k.topic(RequestEvent.topic)
        self._producer = Producer({**k.confluent_config(), **PRODUCER_DEFAULTS, **(producer_config or {})})
        self.sent = 0
        self.failed = 0

    def _delivered(self, err: Any, _msg: Any) -> None:
        self.failed += err is not None

    def send_event(self, event: RequestEvent) -> None:
        """Send one already-built event."""
        self._producer.produce(self.topic, key=event.service.encode(), value=event.to_json(),
                               on_delivery=self._delivered)
        self.sent += 1
        self._producer.poll(0)

    def send(self, request_id: str, service: str, prompt_tokens: int, prompt: str | None = None,
             max_tokens: int | None = None, ts: float | None = None) -> RequestEvent:
        """Validate and send one request (``ts`` defaults to now); returns the event sent."""
        raw = {"ts": time.time() if ts is None else ts, "request_id": request_id, "service": service,
               "prompt_tokens": prompt_tokens, "prompt": prompt, "max_tokens": max_tokens}
        event = parse_event(raw, RequestEvent)
        self.send_event(event)
        return event

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for delivery; returns the number of messages still undelivered."""
        return int(self._producer.flush(timeout_s))

    def __enter__(self) -> RequestProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.flush()
