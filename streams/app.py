"""The Faust application of the live pipeline: the App and agent discovery, nothing else.

Which agents a worker runs is chosen by ``PRESERVE_AGENTS`` (comma-separated names of
``streams/agents/<name>.py``; default all), set by ``preserve worker --agents``. Workers running the same
agent set form one Kafka consumer group (the app id carries the set), so starting more of them shares the
partitions, and thereby the services, between them.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import faust

from streams.pipeline_config import AGENTS
from streams.settings import load_settings
from streams.transport import faust_transport
from streams.transport.ready_batches import ReadyBatchStream

__all__ = ["app", "selected_agents", "app_id"]


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
if os.environ.get("PRESERVE_METRICS_PORT"):  # `preserve worker --metrics-port`: readiness, heartbeat, lag
    from streams.transport.worker_probes import install as _install_probes

    _install_probes(app)


# A worker's threads hand every message to each other (aiokafka's consumer thread -> the event loop -> librdkafka
# delivery threads), and a thread waiting for the GIL gets it only when the holder's switch interval runs out:
# CPython's 5 ms default could add 5 ms per hand-over to a decision whose p99 budget is 20 ms.
GIL_SWITCH_INTERVAL_S = 0.001


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

