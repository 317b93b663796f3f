"""Logging from REPEATABLE READ and SERIALIZABLE transactions: concurrent writers must all
commit, and statistics must stay exact. Deltas a transaction could not apply at commit (the
rollup rows changed after its snapshot) stay staged, count in every statistic, and are applied
by a later flush that sweeps the staging table: the next one of the backend that left them,
and every backend's once per `staged_sweep_seconds`."""

import pytest

from conftest import make_user, scalar
from test_usage_stats import rollup_drift


def begin_logging(connection, level, user, count):
    connection.execute(f"begin isolation level {level}")
    connection.execute("set local role service_role")
    connection.execute("select 1")  # takes the snapshot
    for _ in range(count):
        connection.execute("select public.log_generation(%s, 'Midjourney', 100)", [user])


def assert_counted_exactly(conn, user, calls):
    stats = conn.execute("select total_generations, total_cost from get_user_usage_stats(%s)", [user]).fetchone()
    raw = conn.execute("select count(*), sum(cost) from generation_logs where user_id = %s", [user]).fetchone()
    assert stats == raw and raw[0] == calls
    assert scalar(conn, "select daily_spent from check_budget(%s)", [user]) == raw[1]


def pending(conn):
    return scalar(conn, "select count(*) from aurora_telemetry.pending_usage_deltas")


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_concurrent_snapshot_writers_all_commit_and_are_counted(db, conn, level):
    user = make_user(conn)
    with db.connect() as first, db.connect() as second:  # autocommit: BEGIN is explicit
        begin_logging(first, level, user, 2)
        begin_logging(second, level, user, 3)
        first.execute("commit")
        second.execute("commit")  # its rollup rows changed after its snapshot: must not fail
        assert pending(conn) > 0  # left staged, yet counted:
        assert_counted_exactly(conn, user, 5)
        assert scalar(conn, "select calculate_cost('Midjourney', 100)") * 5 == scalar(
            conn, "select sum(cost) from generation_logs where user_id = %s", [user])
        # The backend that left deltas staged applies them at its next commit.
        for connection in (first, second):
            connection.execute("select public.log_generation(%s, 'Claude', 100)", [user])
        assert pending(conn) == 0
    assert_counted_exactly(conn, user, 7)
    assert rollup_drift(conn) == 0


def test_other_backends_sweep_up_what_was_left_staged(db, conn):
    """Every backend sweeps the staging table every `staged_sweep_seconds` (0: every commit)."""
    conn.execute("insert into aurora_telemetry.settings (name, value) values ('staged_sweep_seconds', '0')")
    try:
        user = make_user(conn)
        with db.connect() as first, db.connect() as second:
            begin_logging(first, "repeatable read", user, 2)
            begin_logging(second, "repeatable read", user, 3)
            first.execute("commit")
            second.execute("commit")
        assert pending(conn) > 0
        with db.connect() as third, third.transaction():  # a backend that left nothing itself
            third.execute("set local role service_role")
            third.execute("select public.log_generation(%s, 'Claude', 100)", [user])
        assert pending(conn) == 0
        assert_counted_exactly(conn, user, 6)
        assert rollup_drift(conn) == 0
    finally:
        conn.execute("delete from aurora_telemetry.settings where name = 'staged_sweep_seconds'")
