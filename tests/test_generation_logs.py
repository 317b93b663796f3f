"""public.generation_logs: the seed's table, its defaults and the rules a log must obey."""

import uuid

import pytest

from conftest import (
    KNOWN_GENERATORS, as_role, log_generation, make_user, raises_pg_error, scalar, user_log_ids,
)

# The seed's columns: (name, type, nullable, numeric precision, numeric scale), in order.
# prompt_length, success and created_at are NOT NULL, stricter than the seed
# (which only gives them defaults), so that every row counts in the statistics.
SEED_COLUMNS = [
    ("id", "uuid", "NO", None, None),
    ("user_id", "uuid", "NO", None, None),
    ("generator", "text", "NO", None, None),
    ("time_ms", "integer", "NO", 32, 0),
    ("cost", "numeric", "YES", 10, 6),
    ("prompt_length", "integer", "NO", 32, 0),
    ("success", "boolean", "NO", None, None),
    ("error_message", "text", "YES", None, None),
    ("metadata", "jsonb", "YES", None, None),
    ("created_at", "timestamp with time zone", "NO", None, None),
]

# How invalid logs are refused: SQLSTATE 22023 (invalid_parameter_value) and
# a message naming what is wrong. Kept here, in one place.
INVALID = "22023"


def unknown_generator_error(name):
    """The offending name, and the names that would have been accepted."""
    return (INVALID, f'unknown generator "{name}"', *KNOWN_GENERATORS)


def negative_value_error(column):
    return (INVALID, column)


def test_columns_are_the_seeds(conn):
    columns = conn.execute(
        """select column_name, data_type, is_nullable, numeric_precision, numeric_scale
             from information_schema.columns
            where table_schema = 'public' and table_name = 'generation_logs'
            order by ordinal_position""").fetchall()
    assert columns == SEED_COLUMNS


def test_an_insert_with_only_the_required_columns_gets_the_seeds_defaults(conn):
    user = make_user(conn)
    with as_role(conn, "service_role") as cur:
        first = cur.execute(
            """insert into generation_logs (user_id, generator, time_ms)
               values (%s, 'Claude', 1500)
               returning id, prompt_length, success, error_message, metadata, created_at""",
            [user]).fetchone()
        second_id = scalar(cur, """insert into generation_logs (user_id, generator, time_ms)
                                   values (%s, 'Claude', 1500) returning id""", [user])
        now = scalar(cur, "select now()")
    log_id, prompt_length, success, error_message, metadata, created_at = first
    assert isinstance(log_id, uuid.UUID) and log_id.version == 4
    assert second_id != log_id
    assert (prompt_length, success, error_message, metadata) == (0, True, None, None)
    assert created_at == now


@pytest.mark.parametrize("generator", KNOWN_GENERATORS)
def test_every_known_generator_is_accepted(conn, generator):
    user = make_user(conn)
    log_id = log_generation(conn, user, generator)
    assert scalar(conn, "select generator from public.generation_logs where id = %s", [log_id]) == generator


def test_an_unknown_generator_is_refused_with_the_known_ones_listed(conn):
    user = make_user(conn)
    with raises_pg_error(*unknown_generator_error("GPT-9")):
        log_generation(conn, user, "GPT-9")
    assert user_log_ids(conn, user) == set()


def test_generator_names_are_exact(conn):
    user = make_user(conn)
    with raises_pg_error(*unknown_generator_error("claude")):
        log_generation(conn, user, "claude")


@pytest.mark.parametrize("column", ["time_ms", "prompt_length"])
def test_negative_durations_and_lengths_are_refused(conn, column):
    user = make_user(conn)
    columns = {"time_ms": 100, "prompt_length": 10, column: -1}
    with raises_pg_error(*negative_value_error(column)):
        log_generation(conn, user, "Claude", **columns)
    assert user_log_ids(conn, user) == set()


def test_zero_duration_and_zero_length_are_fine(conn):
    user = make_user(conn)
    log_id = log_generation(conn, user, "Claude", time_ms=0, prompt_length=0)
    assert scalar(conn, "select (time_ms, prompt_length)::text from public.generation_logs where id = %s",
                  [log_id]) == "(0,0)"


def test_the_rules_bind_every_writer_even_the_table_owner(conn):
    user = make_user(conn)
    with raises_pg_error(*unknown_generator_error("GPT-9")):
        conn.execute("insert into public.generation_logs (user_id, generator, time_ms)"
                     " values (%s, 'GPT-9', 10)", [user])
    with raises_pg_error(*negative_value_error("time_ms")):
        conn.execute("insert into public.generation_logs (user_id, generator, time_ms)"
                     " values (%s, 'Claude', -5)", [user])


def test_every_stored_cost_is_a_numeric_10_6(conn):
    """Whether given by the caller or filled in by the extension, a cost is
    stored as the column's type says: six decimals, as pg_dump will restore it."""
    user = make_user(conn)
    ids = [
        log_generation(conn, user, "Claude", 1500),
        log_generation(conn, user, "Imagen-3", 2500, success=False, error_message="timeout"),
        log_generation(conn, user, "Midjourney", 5000, cost="0.06"),
        log_generation(conn, user, "Claude", 900, cost="0.0123456"),
    ]
    costs = conn.execute(
        """select generator, success, cost::text, scale(cost) from public.generation_logs
            where id = any(%s) and cost is not null""", [ids]).fetchall()
    assert len(costs) == len(ids)
    assert [row for row in costs if row[-1] != 6] == []


def test_a_log_needs_an_existing_user(conn):
    with raises_pg_error("23503"):
        log_generation(conn, uuid.uuid4(), "Claude")


def test_deleting_a_user_deletes_their_logs_only(conn):
    alice, bob = make_user(conn), make_user(conn)
    for generator in KNOWN_GENERATORS:
        log_generation(conn, alice, generator)
    bobs = {log_generation(conn, bob, "Claude")}
    assert len(user_log_ids(conn, alice)) == len(KNOWN_GENERATORS)

    conn.execute("delete from auth.users where id = %s", [alice])

    assert user_log_ids(conn, alice) == set()
    assert user_log_ids(conn, bob) == bobs


def test_a_users_recent_logs_are_indexed(conn):
    """The seed's queries all filter by user and sort or filter by time."""
    indexdefs = [r[0] for r in conn.execute(
        "select indexdef from pg_indexes where schemaname = 'public' and tablename = 'generation_logs'")]
    assert any("(user_id, created_at DESC)" in d for d in indexdefs), indexdefs
