"""public.log_generation and public.calculate_cost: the seed's logging and pricing API."""

import threading
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import as_role, make_user, raises_pg_error, scalar


def log(cur, user, generator="Claude", time_ms=1000, **named):
    """Call log_generation with named arguments, as supabase.rpc('log_generation', {...}) does."""
    args = {"user_id": user, "generator": generator, "time_ms": time_ms, **named}
    if isinstance(args.get("metadata"), dict):
        args["metadata"] = Jsonb(args["metadata"])
    placeholders = ", ".join(f"{name} => %s" for name in args)
    return scalar(cur, f"select public.log_generation({placeholders})", list(args.values()))


def test_the_seed_prices_are_exact(conn):
    got = conn.execute("""select calculate_cost('Claude', 1500), calculate_cost('Imagen-3', 3000),
                                 calculate_cost('Midjourney', 5000)""").fetchone()
    assert got == (Decimal("0.015"), Decimal("0.04"), Decimal("0.06"))
    assert [str(c) for c in got] == ["0.015000", "0.040000", "0.060000"]


def test_token_and_cache_prices_come_from_the_catalog(conn):
    conn.execute("""insert into aurora_telemetry.prices
                        (generator, effective_from, per_generation, per_million_input_tokens, per_million_output_tokens,
                         per_million_cache_read_tokens, per_million_cache_write_tokens)
                    values ('Claude', now() - interval '1 second', 0, 3, 15, 0.30, 3.75)""")
    try:
        cost = scalar(conn, """select calculate_cost('Claude', 1500, '{"input_tokens": 1000, "output_tokens": 500,
                                   "cache_read_tokens": 200000, "cache_write_tokens": 10000}')""")
        # 1000*3 + 500*15 + 200000*0.30 + 10000*3.75 = 108000 per million tokens
        assert cost == Decimal("0.108")
        # Cache reads must not be priced as input: a cache-heavy call is far cheaper.
        uncached = scalar(conn, """select calculate_cost('Claude', 1500, '{"input_tokens": 210000}')""")
        assert uncached == Decimal("0.63")
    finally:
        conn.execute("delete from aurora_telemetry.prices where not builtin")


@pytest.mark.parametrize("call, sqlstate, message", [
    ("calculate_cost('Dall-E', 10)", "22023", 'unknown generator "Dall-E"'),
    ("calculate_cost(NULL, 10)", "22004", "generator must not be NULL"),
    ("calculate_cost('Claude', -1)", "22023", "time_ms must be zero or greater"),
    ("""calculate_cost('Claude', 1, '{"input_tokens": -3}')""", "22023", "metadata.input_tokens must be a whole number"),
    ("""calculate_cost('Claude', 1, '{"images": "two"}')""", "22023", "metadata.images must be a whole number"),
])
def test_bad_pricing_input_is_an_error_not_zero(conn, call, sqlstate, message):
    with raises_pg_error(sqlstate, message):
        conn.execute(f"select {call}")


def test_service_role_logs_and_the_row_is_priced_validated_and_redacted(conn):
    user = make_user(conn)
    with as_role(conn, "service_role") as cur:
        log_id = log(cur, user, "Imagen-3", 2500, prompt_length=120,
                     metadata={"vibe": "serene", "resolution": "1024x1024", "reflection": "my private diary"})
        failed_id = log(cur, user, "Claude", 1200, success=False, error_message="API rate limit exceeded",
                        prompt_length=450)
    row = conn.execute("select user_id, generator, time_ms, cost, prompt_length, success, metadata "
                       "from generation_logs where id = %s", [log_id]).fetchone()
    assert row == (user, "Imagen-3", 2500, Decimal("0.04"), 120, True,
                   {"vibe": "serene", "resolution": "1024x1024"})
    failed = conn.execute("select cost, success, error_message from generation_logs where id = %s",
                          [failed_id]).fetchone()
    assert failed == (Decimal("0"), False, "API rate limit exceeded")


def test_application_triggers_run_under_the_sessions_own_planner_settings(conn):
    """log_generation plans its own statements its own way (generic plans, no sequential
    scans); a trigger the application puts on generation_logs still runs with the session's
    settings, as it does after a plain INSERT."""
    conn.execute("create table public.seen_settings (enable_seqscan text, plan_cache_mode text)")
    conn.execute("""create function public.note_settings() returns trigger
                    language plpgsql security definer set search_path = pg_catalog, public as $$
                    begin
                        insert into public.seen_settings
                        values (current_setting('enable_seqscan'), current_setting('plan_cache_mode'));
                        return new;
                    end $$""")
    conn.execute("""create trigger note_settings after insert on public.generation_logs
                    for each row execute function public.note_settings()""")
    try:
        user = make_user(conn)
        with as_role(conn, "service_role") as cur:
            log(cur, user)
        assert conn.execute("select * from public.seen_settings").fetchall() == [("on", "auto")]
    finally:
        conn.execute("drop trigger note_settings on public.generation_logs")
        conn.execute("drop function public.note_settings()")
        conn.execute("drop table public.seen_settings")


def test_redacted_keys_are_a_setting(conn):
    user = make_user(conn)
    conn.execute("""insert into aurora_telemetry.settings (name, value)
                    values ('redacted_metadata_keys', '["reflection", "email"]')""")
    try:
        with as_role(conn, "service_role") as cur:
            log_id = log(cur, user, metadata={"email": "a@b.c", "nested": {"reflection": "x", "ok": 1}})
        assert scalar(conn, "select metadata from generation_logs where id = %s", [log_id]) == {"nested": {"ok": 1}}
    finally:
        conn.execute("delete from aurora_telemetry.settings")


def test_a_retry_with_the_same_idempotency_key_counts_once(conn):
    user = make_user(conn)
    with as_role(conn, "service_role") as cur:
        first = log(cur, user, idempotency_key="submit-42")
        again = log(cur, user, idempotency_key="submit-42")
        other = log(cur, user, idempotency_key="submit-43")
    assert first == again != other
    assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 2
    stats = scalar(conn, "select total_generations from get_user_usage_stats(%s)", [user])
    assert stats == 2


def test_concurrent_retries_with_one_key_log_one_row(db, conn):
    user = make_user(conn)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def attempt():
        with db.connect() as c:
            barrier.wait()
            try:
                with as_role(c, "service_role") as cur:
                    results.append(log(cur, user, idempotency_key="race"))
            except psycopg.errors.SerializationFailure:
                errors.append("40001")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 1
    logged = scalar(conn, "select id from generation_logs where user_id = %s", [user])
    assert set(results) == {logged}
    assert len(results) + len(errors) == 6


@pytest.mark.parametrize("named, sqlstate, message", [
    ({"generator": "GPT-9"}, "22023", 'unknown generator "GPT-9"'),
    ({"time_ms": -5}, "22023", "time_ms must be zero or greater, got -5"),
    ({"prompt_length": -1}, "22023", "prompt_length must be zero or greater, got -1"),
    ({"user_id": uuid.UUID(int=7)}, "23503", "unknown user 00000000-0000-0000-0000-000000000007"),
    ({"user_id": None}, "22004", "user_id must not be NULL"),
    ({"time_ms": None}, "22004", "time_ms must not be NULL"),
    ({"success": None}, "22004", "success must not be NULL"),
])
def test_invalid_calls_are_refused_with_clear_errors(conn, named, sqlstate, message):
    user = make_user(conn)
    args = {"user_id": user, "generator": "Claude", "time_ms": 100, **named}
    with raises_pg_error(sqlstate, message):
        with as_role(conn, "service_role") as cur:
            log(cur, **{"user": args.pop("user_id"), **args})
    assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 0


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_only_the_backend_may_log(conn, role):
    user = make_user(conn)
    with raises_pg_error("42501", "permission denied for function log_generation"):
        with as_role(conn, role, sub=user) as cur:
            log(cur, user)


def test_anon_may_not_even_price(conn):
    with raises_pg_error("42501", "permission denied for function calculate_cost"):
        with as_role(conn, "anon") as cur:
            cur.execute("select calculate_cost('Claude', 1)")
    with as_role(conn, "authenticated", sub=uuid.uuid4()) as cur:
        assert scalar(cur, "select calculate_cost('Claude', 1)") == Decimal("0.015")


def test_a_price_change_reaches_sessions_that_already_priced_calls(db, conn):
    """Each backend keeps a copy of the catalogs; a committed change must reach it."""
    with db.connect() as other:
        assert scalar(other, "select calculate_cost('Midjourney', 1)") == Decimal("0.06")
        conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                        values ('Midjourney', now() - interval '1 second', 0.07)""")
        try:
            assert scalar(other, "select calculate_cost('Midjourney', 1)") == Decimal("0.07")
            conn.execute("insert into aurora_telemetry.generators (name) values ('Brand-New')")
            conn.execute("insert into aurora_telemetry.prices (generator, effective_from) values ('Brand-New', '-infinity')")
            assert scalar(other, "select calculate_cost('Brand-New', 1)") == Decimal("0")
        finally:
            conn.execute("delete from aurora_telemetry.prices where not builtin")
            conn.execute("delete from aurora_telemetry.generators where not builtin")
        assert scalar(other, "select calculate_cost('Midjourney', 1)") == Decimal("0.06")
        with raises_pg_error("22023", 'unknown generator "Brand-New"'):
            other.execute("select calculate_cost('Brand-New', 1)")
