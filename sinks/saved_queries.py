"""Saved analytics queries, also created as views of the same name on both archive kinds.

Plain ClickHouse SQL over the per-topic tables (:func:`sinks.schema.table_name`); event times are epoch seconds
(``ts``), bucketed to minutes in UTC. Percentiles are exact (``quantileExact``) so live and offline runs of
the same trace compare without sampling noise.
"""

from __future__ import annotations

# ruff: noqa: S608 - constant SQL built from constants, no user input

__all__ = ["SAVED_QUERIES", "SAVED_HELP"]

_MINUTE = "toDateTime(toUInt32(intDiv(toUInt64({col}), 60) * 60), 'UTC')"

SAVED_QUERIES: dict[str, str] = {
    # Per arrival minute and service: completions and P50/P99 of time-to-first-token and end-to-end latency.
    "latency_per_minute": f"""
SELECT {_MINUTE.format(col="arrival_ts")} AS minute, service, count() AS completions,
       quantileExact(0.5)(ttft_s) AS p50_ttft_s, quantileExact(0.99)(ttft_s) AS p99_ttft_s,
       quantileExact(0.5)(e2e_s) AS p50_e2e_s, quantileExact(0.99)(e2e_s) AS p99_e2e_s
FROM completions GROUP BY minute, service ORDER BY service, minute""",
    # Instances provisioned per minute: from an instance's first event until its 'stopped' event (or the last
    # event seen anywhere, if it never stopped); 'ready' counts from its first 'ready' event.
    "instances_over_time": f"""
WITH (SELECT max(ts) FROM instance_events) AS t_end,
spans AS (
    SELECT service, instance_id, min(ts) AS t0, minIf(ts, kind = 'ready') AS t_ready,
           countIf(kind = 'ready') > 0 AS was_ready,
           if(countIf(kind = 'stopped') > 0, minIf(ts, kind = 'stopped'), t_end) AS t1
    FROM instance_events GROUP BY service, instance_id)
SELECT {_MINUTE.format(col="m * 60")} AS minute, service, count() AS instances,
       countIf(was_ready AND m >= intDiv(toUInt64(t_ready), 60)) AS ready
FROM spans ARRAY JOIN range(toUInt64(intDiv(toUInt64(t0), 60)), toUInt64(intDiv(toUInt64(t1), 60)) + 1) AS m
GROUP BY m, service ORDER BY service, m""",
    # Output-length predictor vs the real output of the completed request, per service and predictor.
    "predictor_error": """
SELECT p.service AS service, p.predictor AS predictor, count() AS requests,
       avg(c.output_tokens) AS mean_actual_tokens, avg(p.predicted_tokens) AS mean_predicted_tokens,
       avg(abs(p.predicted_tokens - c.output_tokens)) AS mae_tokens,
       avg(p.predicted_tokens - c.output_tokens) AS bias_tokens,
       quantileExact(0.5)(abs(p.predicted_tokens - c.output_tokens)) AS median_abs_error_tokens,
       avg(c.output_tokens <= p.predicted_p90_tokens) AS p90_coverage
FROM predicted_requests AS p INNER JOIN completions AS c ON p.request_id = c.request_id
GROUP BY service, predictor ORDER BY service, predictor""",
    # Every scaling decision with its reason, in event-time order.
    "scaler_decisions": """
SELECT toDateTime64(ts, 3, 'UTC') AS time, service, policy, current_instances, target_instances,
       target_instances - current_instances AS change, reason
FROM scale_commands ORDER BY ts, service""",
}

SAVED_HELP: dict[str, str] = {
    "latency_per_minute": "per-minute P50/P99 TTFT and end-to-end latency per service",
    "instances_over_time": "instances provisioned (and ready) per minute per service",
    "predictor_error": "output-length predictor error (predicted vs actual tokens) per service and predictor",
    "scaler_decisions": "scale commands with current/target instances and the reason",
}
