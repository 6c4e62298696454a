"""Publish a few requests to the pipeline as a gateway would.

    PRESERVE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/produce_requests.py --n 10

Then watch them become routes: `preserve sql "SELECT count() FROM routes"` (with workers and a fleet running).
"""

from __future__ import annotations

import argparse
import uuid

from streams.transport.producer_helper import RequestProducer

PROMPTS = [
    "Write a haiku about stream processing.",
    "Explain the difference between TTFT and end-to-end latency in LLM serving, with an example.",
    "Translate to French: the fleet scales up before the load arrives.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="requests to send")
    ap.add_argument("--service", default="llama-2-7b", help="service (model) name: the Kafka key")
    ap.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: settings)")
    args = ap.parse_args()
    with RequestProducer(bootstrap=args.bootstrap) as gw:
        for i in range(args.n):
            prompt = PROMPTS[i % len(PROMPTS)]
            gw.send(f"example-{uuid.uuid4().hex[:12]}", args.service, prompt_tokens=len(prompt.split()) * 4 // 3,
                    prompt=prompt)
    print(f"sent {gw.sent} requests to {gw.topic} ({gw.failed} failed)")


if __name__ == "__main__":
    main()
