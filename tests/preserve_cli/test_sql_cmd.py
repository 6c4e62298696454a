"""`preserve sql` with a word that is no saved query says so (it used to pass it to ClickHouse as SQL)."""

from __future__ import annotations

from click.testing import CliRunner

from preserve_cli.sql_cmd import sql


def test_an_unknown_saved_query_is_a_clear_usage_error() -> None:
    res = CliRunner().invoke(sql, ["no_such_query"])
    assert res.exit_code == 2
    assert "no saved query 'no_such_query'" in res.output and "latency_per_minute" in res.output
    assert "Syntax error" not in res.output
