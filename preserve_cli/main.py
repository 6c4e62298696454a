"""Entry point of the `preserve` console script.

Sub-commands are loaded lazily from ``COMMANDS`` so that ``preserve --help`` and light commands don't pay
for importing torch or faust.
"""

from __future__ import annotations

import importlib
import os

import click

# The archive worker writes many small Parquet files for hours. With pyarrow's default mimalloc pool its RSS grew
# ~10 MB/min while Arrow held no memory (freed pages kept by the allocator); the C allocator gives them back
# (bench/bench_archive_memory.py). Read once when pyarrow starts, so it is set before any command imports it;
# a user's own ARROW_DEFAULT_MEMORY_POOL wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, attribute, one-line help)
    "infra": ("preserve_cli.infra_cmd:infra", "Start, stop and inspect the local Kafka broker (KRaft)."),
    "topics": ("preserve_cli.topics_cmd:topics", "Create and list the pipeline's Kafka topics."),
    "sql": ("preserve_cli.sql_cmd:sql", "Run SQL against the ClickHouse archive (embedded or server)."),
    "trace": ("preserve_cli.trace_cmd:trace", "Inspect traces, attach prompts, convert formats."),
    "synth": ("preserve_cli.trace_cmd:synth", "Synthesise a long trace from ServeGen per-client rates."),
    "eval": ("preserve_cli.eval_cmd:eval_cmd", "Replay a trace through the simulated fleet for each policy."),
    "calibrate": ("preserve_cli.calibrate_cmd:calibrate", "Fit the simulator's step-time cost model."),
    "load-predictor": ("preserve_cli.load_predictor_cmd:load_predictor", "Train/evaluate the output-length predictor."),
    "forecaster": ("preserve_cli.forecaster_cmd:forecaster", "Train/evaluate the token-density forecaster."),
    "worker": ("preserve_cli.worker_cmd:worker", "Run Faust agents of the live pipeline."),
    "fleet": ("preserve_cli.fleet_cmd:fleet", "Run the simulated instance managers of the live pipeline."),
    "produce": ("preserve_cli.produce_cmd:produce", "Send RequestEvents from a JSON-lines file."),
    "replay": ("preserve_cli.produce_cmd:replay", "Replay a trace into Kafka at its (scaled) times."),
    "schemas": ("preserve_cli.produce_cmd:schemas", "Write the JSON Schema files of the event records."),
    "report": ("preserve_cli.report_cmd:report", "Print the analytics report (and plots) from ClickHouse."),
    "demo": ("preserve_cli.demo_cmd:demo", "End-to-end demo: a real trace through the live pipeline."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module, attr = target.split(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command), target
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="preserve-kafka")
def cli() -> None:
    """PreServe on Kafka: predictive routing and autoscaling for LLM-serving fleets.

    Predicts each service's token volume (mLSTM) and each request's output length (prompt-tuned encoder),
    and uses both to route requests and scale the fleet before load arrives.
    """


if __name__ == "__main__":
    cli()
