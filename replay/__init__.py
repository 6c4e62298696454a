"""Trace replay inputs: loaders of public LLM traces, ServeGen long-trace synthesis, prompt attachment.

See replay/README.md for the formats and every flag's semantics.
"""

from replay.length_pool import load_length_pool, load_prompt_corpus
from replay.prompt_attach import attach_prompts
from replay.servegen_io import load_servegen
from replay.servegen_synth import SynthConfig, synthesize_trace
from replay.trace_loader import detect_format, load_trace
from replay.trace_schema import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TRACE_FORMATS,
    BadRow,
    LoadedTrace,
    TraceFormatError,
)
from replay.trace_transform import TraceStats, scale_rate, select_window, trace_stats
from replay.trace_writer import write_trace

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TRACE_FORMATS",
    "BadRow",
    "LoadedTrace",
    "SynthConfig",
    "TraceFormatError",
    "TraceStats",
    "attach_prompts",
    "detect_format",
    "load_length_pool",
    "load_prompt_corpus",
    "load_servegen",
    "load_trace",
    "scale_rate",
    "select_window",
    "synthesize_trace",
    "trace_stats",
    "write_trace",
]
