"""Bad input: every public door gets NULLs, extremes, huge and malformed values. Each gives a
clear error with a proper SQLSTATE or a correct result; none crashes a backend, and the
rollups stay equal to the raw rows afterwards."""

import uuid
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from conftest import as_role, make_user, raises_pg_error, scalar
from test_usage_stats import rollup_drift

LOG_ARGS = ["user_id", "generator", "time_ms", "success", "error_message", "prompt_length",
            "metadata", "idempotency_key"]
REQUIRED = {"user_id", "generator", "time_ms", "success", "prompt_length"}


def call_log(conn, **args):
    names = ", ".join(f"{name} => %s" for name in args)
    with as_role(conn, "service_role") as cur:
        return scalar(cur, f"select public.log_generation({names})", list(args.values()))


@pytest.mark.parametrize("null_arg", LOG_ARGS)
def test_a_null_in_any_argument_is_refused_or_means_absent(conn, null_arg):
    user = make_user(conn)
    args = {"user_id": user, "generator": "Claude", "time_ms": 10, "success": True,
            "error_message": "e", "prompt_length": 3, "metadata": Jsonb({"a": 1}),
            "idempotency_key": f"k-{null_arg}"}
    args[null_arg] = None
    if null_arg in REQUIRED:
        with raises_pg_error("22004", f"{null_arg} must not be NULL"):
            call_log(conn, **args)
        assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 0
    else:
        log_id = call_log(conn, **args)
        assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 1
        if null_arg != "idempotency_key":  # not a column: without a key, no idempotency
            assert conn.execute(f"select {null_arg} from generation_logs where id = %s", [log_id]).fetchone() == (None,)


def test_integer_extremes(conn):
    user = make_user(conn)
    biggest = call_log(conn, user_id=user, generator="Claude", time_ms=2**31 - 1, prompt_length=2**31 - 1)
    assert conn.execute("select time_ms, prompt_length from generation_logs where id = %s",
                        [biggest]).fetchone() == (2**31 - 1, 2**31 - 1)
    with raises_pg_error("22023", "time_ms must be zero or greater, got -2147483648"):
        call_log(conn, user_id=user, generator="Claude", time_ms=-2**31)
    with raises_pg_error("22003"):  # out of range for integer: refused by Postgres itself
        with as_role(conn, "service_role") as cur:
            cur.execute("select log_generation(%s, 'Claude', %s::bigint::integer)", [user, 2**31])
    stats = conn.execute("select total_generations, average_time_ms from get_user_usage_stats(%s)", [user]).fetchone()
    assert stats == (1, Decimal(2**31 - 1))


@pytest.mark.parametrize("cost, sqlstate", [
    ("NaN", "23514"), ("-0.01", "23514"), ("Infinity", "22003"), ("-Infinity", "22003"), ("1e10", "22003"),
])
def test_impossible_costs_are_refused(conn, cost, sqlstate):
    user = make_user(conn)
    with raises_pg_error(sqlstate):
        with as_role(conn, "service_role") as cur:
            cur.execute("insert into generation_logs (user_id, generator, time_ms, cost) values (%s, 'Claude', 1, %s::numeric)",
                        [user, cost])


def test_huge_error_messages_and_metadata_are_kept_and_redacted(conn):
    user = make_user(conn)
    message = "x" * (1 << 20) + "\n\"quoted\", with commas"
    big = {"blob": "y" * (10 << 20), "reflection": "private", "nested": {"reflection": "also private", "n": 1}}
    log_id = call_log(conn, user_id=user, generator="Claude", time_ms=5, success=False,
                      error_message=message, metadata=Jsonb(big))
    stored_message, keys, nested, size = conn.execute(
        """select error_message, (select array_agg(k order by k) from jsonb_object_keys(metadata) k),
                  metadata -> 'nested', length(metadata ->> 'blob')
             from generation_logs where id = %s""", [log_id]).fetchone()
    assert stored_message == message
    assert keys == ["blob", "nested"] and nested == {"n": 1} and size == 10 << 20


def test_deep_metadata_is_kept_redacted_or_refused_clearly(conn):
    user = make_user(conn)
    deep_plain = "[" * 2000 + '{"k": 1}' + "]" * 2000
    deep_private = "[" * 100 + '{"reflection": 1, "k": 1}' + "]" * 100
    too_deep_private = "[" * 5000 + '{"reflection": 1}' + "]" * 5000
    with as_role(conn, "service_role") as cur:
        plain = scalar(cur, "select log_generation(%s, 'Claude', 1, metadata => %s::jsonb)", [user, deep_plain])
        private = scalar(cur, "select log_generation(%s, 'Claude', 1, metadata => %s::jsonb)", [user, deep_private])
    assert scalar(conn, "select metadata::text = %s::jsonb::text from generation_logs where id = %s",
                  [deep_plain, plain])
    assert scalar(conn, "select metadata::text from generation_logs where id = %s", [private]) == \
        "[" * 100 + '{"k": 1}' + "]" * 100
    with raises_pg_error("54001", "stack depth limit exceeded"):
        with as_role(conn, "service_role") as cur:
            cur.execute("select log_generation(%s, 'Claude', 1, metadata => %s::jsonb)", [user, too_deep_private])
    assert scalar(conn, "select 1") == 1  # the backend survived


def test_invalid_utf8_is_refused_by_postgres(conn):
    user = make_user(conn)
    with raises_pg_error("22021"):
        with as_role(conn, "service_role") as cur:
            cur.execute("select log_generation(%s, 'Claude', 1, error_message => convert_from('\\xc328'::bytea, 'UTF8'))",
                        [user])


@pytest.mark.parametrize("call, sqlstate, message", [
    ("select * from get_user_usage_timeseries(%(u)s, NULL)", "22004", "bucket must not be NULL"),
    ("select * from get_user_usage_timeseries(%(u)s, 'fortnight')", "22023", "bucket must be one of hour, day, week, month"),
    ("select * from get_user_usage_stats(%(u)s, 'infinity', '-infinity')", "22023", "since must not be later than until"),
    ("select * from check_budget(%(u)s, 'Dall-E')", "22023", 'unknown generator "Dall-E"'),
    ("select reprice_generation_logs(NULL, now())", "22004", "since must not be NULL"),
    ("select reprice_generation_logs(now(), now() - interval '1 day')", "22023", "since must not be later than until"),
    ("select calculate_cost('Claude', 1, '{\"cache_read_tokens\": 1e400}')", "22023", "metadata.cache_read_tokens"),
])
def test_bad_arguments_to_the_api(conn, call, sqlstate, message):
    user = make_user(conn)
    with raises_pg_error(sqlstate, message):
        conn.execute(call, {"u": user})


def test_infinite_and_empty_ranges_are_answered(conn):
    user = make_user(conn)
    call_log(conn, user_id=user, generator="Claude", time_ms=7)
    assert conn.execute("select total_generations from get_user_usage_stats(%s, '-infinity', 'infinity')",
                        [user]).fetchone() == (1,)
    assert conn.execute("select total_generations from get_user_usage_stats(%s, now() + interval '1 day', 'infinity')",
                        [user]).fetchone() == (0,)
    assert conn.execute("select count(*) from get_user_usage_timeseries(%s, 'hour', now(), now())",
                        [user]).fetchone() == (0,)


def test_the_rollups_are_still_exact_after_all_of_this(conn):
    # Runs last in this module (pytest keeps file order): every refused call left nothing.
    assert rollup_drift(conn) == 0
    assert scalar(conn, "select count(*) from aurora_telemetry.pending_usage_deltas") == 0
