"""Evaluation harness: every policy on the same trace and fleet, results as a table, JSON and plots.

``run_eval`` is the Python entry point (``preserve eval`` is its CLI, ``preserve_cli/eval_cmd.py``).
"""

from fleet.harness.report import format_table, write_json
from fleet.harness.runner import EvalConfig, EvalReport, EvalRun, run_eval
from fleet.harness.trace_input import load_eval_trace
from streams.policies.builder import build_policy, frontier_specs, predictor_for

__all__ = ["EvalConfig", "EvalReport", "EvalRun", "build_policy", "format_table",
           "frontier_specs", "load_eval_trace", "predictor_for", "run_eval", "write_json"]
