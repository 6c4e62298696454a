"""A minimal faust app (topic -> agent -> Table -> output topic) used to check faust against our broker.

Run as ``python -m tests.infra.faust_probe_app worker`` with PROBE_BROKER, PROBE_ID and PROBE_DATADIR set.
The agent counts words in a Table (which makes faust create a changelog topic through its leader assignor,
the path reported to break on Kafka 4) and forwards ``word=count`` to the output topic.
"""

from __future__ import annotations

import os

import faust

BROKER = os.environ.get("PROBE_BROKER", "127.0.0.1:9092")
PROBE_ID = os.environ.get("PROBE_ID", "probe")

app = faust.App(
    f"faust-probe-{PROBE_ID}",
    broker=f"kafka://{BROKER}",
    datadir=os.environ.get("PROBE_DATADIR", "/tmp/faust-probe"),
    store="memory://",
    topic_partitions=2,
    topic_replication_factor=1,
    web_enabled=False,
)
words_in = app.topic(f"probe-{PROBE_ID}-in", value_type=bytes, value_serializer="raw", partitions=2)
counts_out = app.topic(f"probe-{PROBE_ID}-out", value_type=bytes, value_serializer="raw", partitions=1)
counts = app.Table(f"probe-{PROBE_ID}-counts", default=int, partitions=2)


@app.agent(words_in)
async def count_words(stream: faust.StreamT[bytes]) -> None:
    async for word in stream:
        key = word.decode()
        counts[key] += 1
        await counts_out.send(value=f"{key}={counts[key]}".encode())


if __name__ == "__main__":
    app.main()
