"""The Faust application of the live pipeline: the App and agent discovery, nothing else.

Which agents a worker runs is chosen by ``PRESERVE_AGENTS`` (comma-separated names of
``streams/agents/<name>.py``; default all), set by ``preserve worker --agents``. Workers running the same
agent set form one Kafka consumer group (the app id carries the set), so starting more of them shares the
partitions, and thereby the services, between them.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import faust

from streams.log_limits import install_kafka_log_limits
from streams.pipeline_config import AGENTS
from streams.settings import load_settings
from streams.transport import faust_transport
from streams.transport.ready_batches import ReadyBatchStream

__all__ = ["app", "selected_agents", "app_id", "READY_LINE", "ready_line"]


def selected_agents() -> list[str]:
    raw = os.environ.get("PRESERVE_AGENTS", "").strip()
    names = [a.strip() for a in raw.split(",") if a.strip()] if raw else list(AGENTS)
    unknown = sorted(set(names) - set(AGENTS))
    if unknown:
        raise ValueError(f"unknown agents {unknown}; known: {', '.join(AGENTS)}")
    return [a for a in AGENTS if a in names]


def app_id() -> str:
    agents = selected_agents()
    return "preserve" if agents == list(AGENTS) else "preserve-" + "-".join(agents)


def _credentials() -> faust.types.auth.CredentialsT | None:
    k = load_settings().kafka
    if k.sasl_mechanism:
        pw = k.sasl_password.get_secret_value() if k.sasl_password else ""
        ssl_ctx = None
        if k.security_protocol == "SASL_SSL":
            import ssl

            ssl_ctx = ssl.create_default_context(cafile=k.ssl_cafile)
        return faust.SASLCredentials(username=k.sasl_username or "", password=pw, mechanism=k.sasl_mechanism,
                                     ssl_context=ssl_ctx)
    if k.security_protocol == "SSL":
        import ssl

        ctx = ssl.create_default_context(cafile=k.ssl_cafile)
        if k.ssl_certfile:
            ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile)
        return faust.SSLCredentials(ctx)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def faust_datadir(tmp: Path | None = None) -> Path:
    """This worker's Faust data folder (tables live in memory; Faust still wants one): removed when the
    worker exits, and folders of workers that no longer run (kill -9) are swept at start."""
    root = tmp or Path(tempfile.gettempdir())
    for stale in root.glob("preserve-faust-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = root / f"preserve-faust-{os.getpid()}"
    atexit.register(shutil.rmtree, path, True)
    return path


def _make_app() -> faust.App:
    s = load_settings()
    web_port = os.environ.get("PRESERVE_WEB_PORT")
    return faust.App(
        app_id(),
        # Faust's aiokafka transport with a bounded fetch wait (streams/transport/faust_transport.py)
        broker=[f"{faust_transport.SCHEME}://{hp.strip()}" for hp in s.kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(),
        autodiscover=lambda: [f"streams.agents.{a}" for a in selected_agents()],
        store="memory://",
        datadir=faust_datadir(),
        topic_partitions=s.kafka.partitions,
        # 0 (auto) is resolved against the cluster by `preserve worker` before this import; 1 where nobody did.
        topic_replication_factor=s.kafka.replication_factor or 1,
        producer_acks=-1,  # table changelogs: acknowledged by every in-sync replica (min.insync.replicas)
        consumer_auto_offset_reset="earliest",
        web_enabled=bool(web_port),
        web_port=int(web_port) if web_port else 6066,
        producer_linger_ms=1,
        stream_wait_empty=False,
        Stream=ReadyBatchStream,  # agents batch with take_ready (streams/transport/ready_batches.py)
    )


app = _make_app()
install_kafka_log_limits()  # aiokafka/Faust retry lines while Kafka is down: bounded per minute
if os.environ.get("PRESERVE_METRICS_PORT"):  # `preserve worker --metrics-port`: readiness, heartbeat, lag
    from streams.transport.worker_probes import install as _install_probes

    _install_probes(app)


# A worker's threads hand every message to each other (aiokafka's consumer thread -> the event loop -> librdkafka
# delivery threads), and a thread waiting for the GIL gets it only when the holder's switch interval runs out:
# CPython's 5 ms default could add 5 ms per hand-over to a decision whose p99 budget is 20 ms.
GIL_SWITCH_INTERVAL_S = 0.001


READY_LINE = "preserve worker ready"
_assignments = [0]


def ready_line(agents: list[str], group: str, assigned: set[tuple[str, int]]) -> str:
    """The line an operator (or a supervisor) waits for: the worker's agents run and hold their partitions.
    Models are loaded by then: the agents' modules build their state (predictor included) at import."""
    topics = sorted({t for t, _ in assigned})
    return (f"{READY_LINE}: agents {','.join(agents)}, group {group}, {len(assigned)} partitions of "
            f"{len(topics)} topics assigned" + ("" if assigned else " (none: more members than partitions)"))


@app.on_partitions_assigned.connect  # type: ignore[misc,arg-type]
async def _say_ready(sender: faust.App, assigned: set, **_: object) -> None:
    """One "ready" line at the first assignment (stderr: shown at every --loglevel), an info line at later ones."""
    _assignments[0] += 1
    tps = {(tp.topic, tp.partition) for tp in assigned}
    if _assignments[0] == 1:
        print(ready_line(selected_agents(), app_id(), tps), file=sys.stderr, flush=True)
    else:
        logging.getLogger(__name__).info("partitions reassigned: %d of %d topics", len(tps),
                                         len({t for t, _ in tps}))


LOOP_PROBE_S = 0.25  # how often the loop-lag probe wakes (4 wake-ups/s: negligible next to the agents)
LOOP_REPORT_S = 60.0  # one lag line per minute


@app.task
async def _watch_loop() -> None:
    """The loop's own lag, one line a minute (``streams/runtime_watch.py``)."""
    import asyncio
    import time

    from streams.runtime_watch import LagWindow

    log = logging.getLogger(__name__)
    window = LagWindow()
    started = time.monotonic()
    while True:
        t = time.monotonic()
        await asyncio.sleep(LOOP_PROBE_S)
        now = time.monotonic()
        window.add(now - t - LOOP_PROBE_S)
        if now - started >= LOOP_REPORT_S:
            line = window.line(now - started)
            if line:
                log.info("%s", line)
            started = now


@app.task
async def _watch_heap() -> None:
    """With ``PRESERVE_TRACEMALLOC=<s>``: the top heap growth sites every that many seconds, against a baseline
    taken one interval in (after the agents' lazy imports). Its own task, so that the loop-lag probe sees the
    pause a snapshot causes (it holds the GIL: seconds on a big heap) instead of waiting for it."""
    import asyncio

    from streams.runtime_watch import TRACEMALLOC_ENV, heap_growth_lines

    every = float(os.environ.get(TRACEMALLOC_ENV, "0") or 0)
    if every <= 0:
        return
    import tracemalloc

    log = logging.getLogger(__name__)
    tracemalloc.start(1)
    first = None
    while True:
        await asyncio.sleep(every)
        snap = await asyncio.to_thread(tracemalloc.take_snapshot)
        if first is None:
            first = snap
            continue
        for line in heap_growth_lines(first, snap):
            log.info("%s", line)


@app.task
async def _tune_worker_runtime() -> None:
    """Latency settings of a running worker (not of processes that merely import the app).

    The GC: exempt everything that exists once the worker runs (imports, models, policy objects) from the cyclic
    collector. A full collection walks every tracked object, and a worker's import graph (Faust, torch, pandas)
    made each one a 65-150 ms pause of the event loop here, every few seconds under load. Later objects are
    still collected as before. The GIL: see :data:`GIL_SWITCH_INTERVAL_S`.
    """
    gc.freeze()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

