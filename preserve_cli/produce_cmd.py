"""``preserve produce``, ``preserve replay`` and ``preserve schemas``: getting requests into the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(context_settings={"show_default": True})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="skip (and count) invalid lines instead of stopping at the first")
def produce(file: Path, skip_invalid: bool) -> None:
    """Send RequestEvents from a JSON-lines FILE (one event per line, schema: schemas/requests.schema.json).

    Every line is validated first; an invalid line stops the command with its line number and the reason
    (nothing is sent) unless --skip-invalid.
    """
    from replay.kafka_replay import kafka_producer
    from streams.records import InvalidEvent, RequestEvent, parse_event

    events, skipped = [], 0
    with file.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                events.append(parse_event(line, RequestEvent))
            except InvalidEvent as e:
                if not skip_invalid:
                    raise click.ClickException(f"{file}:{lineno}: {e}") from None
                skipped += 1
    producer, kafka = kafka_producer()
    topic = kafka.topic(RequestEvent.topic)
    failed = [0]

    def delivered(err: object, _msg: object) -> None:
        failed[0] += err is not None

    for ev in events:
        producer.produce(topic, key=ev.service.encode(), value=ev.to_json(), on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    click.echo(f"sent {len(events) - failed[0] - left} requests to {topic}; skipped {skipped} invalid lines; "
               f"failed {failed[0] + left}")
    if failed[0] or left:
        raise SystemExit(1)


@click.command(context_settings={"show_default": True})
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speedup", type=float, default=24.0, help="trace seconds per wall second (inf: as fast as possible)")
@click.option("--limit", type=int, default=None, help="replay only the first N requests")
@click.option("--format", "fmt", default=None, help="trace format (default: detected)")
@click.option("--service", default=None, help="service name where the format has none")
@click.option("--no-prompts", is_flag=True, help="leave prompt texts out of the events")
@click.option("--epoch", type=float, default=None, help="event time of the trace's t=0 (default: now)")
def replay(trace: Path, speedup: float, limit: int | None, fmt: str | None, service: str | None, no_prompts: bool,
           epoch: float | None) -> None:
    """Replay TRACE into the `requests` topic at its scaled times (event time = trace time)."""
    from tqdm import tqdm

    from replay import TraceFormatError, load_trace

    try:
        df = load_trace(trace, fmt=fmt, service=service).df
    except TraceFormatError as e:
        raise click.ClickException(str(e)) from None
    if limit is not None:
        df = df.iloc[:limit]
    from replay.kafka_replay import send_trace

    counts = send_trace(df, speedup, epoch, not no_prompts, tqdm)
    click.echo(f"replayed {counts.sent} requests in {counts.wall_s:.1f} s ({counts.rate:.0f}/s); "
               f"delivered {counts.delivered}, failed {counts.failed}; worst lateness {counts.max_behind_s:.3f} s")
    if counts.failed:
        raise SystemExit(1)


@click.command(context_settings={"show_default": True})
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"),
              help="directory for <topic>.schema.json files")
def schemas(out: Path) -> None:
    """Write the JSON Schema of every event record (one file per topic), generated from streams/records.py."""
    from streams.records import RECORD_TYPES

    out.mkdir(parents=True, exist_ok=True)
    for topic, cls in sorted(RECORD_TYPES.items()):
        schema = cls.model_json_schema()
        schema["$id"] = f"preserve/{topic}.schema.json"
        schema["description"] = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else topic
        schema["x-kafka-topic"] = topic
        (out / f"{topic}.schema.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {len(RECORD_TYPES)} schemas to {out}/")
