"""Logging from REPEATABLE READ and SERIALIZABLE transactions: concurrent writers must all
commit, and statistics must stay exact. Deltas a transaction could not apply at commit (the
rollup rows changed after its snapshot) stay staged, count in every statistic, and are applied
by the next flush that can."""

import pytest

from conftest import make_user, scalar
from test_usage_stats import rollup_drift


def begin_logging(connection, level, user, count):
    connection.execute(f"begin isolation level {level}")
    connection.execute("set local role service_role")
    connection.execute("select 1")  # takes the snapshot
    for _ in range(count):
        connection.execute("select public.log_generation(%s, 'Midjourney', 100)", [user])


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_concurrent_snapshot_writers_all_commit_and_are_counted(db, conn, level):
    user = make_user(conn)
    with db.connect() as first, db.connect() as second:  # autocommit: BEGIN is explicit
        begin_logging(first, level, user, 2)
        begin_logging(second, level, user, 3)
        first.execute("commit")
        second.execute("commit")  # its rollup rows changed after its snapshot: must not fail
    stats = conn.execute("select total_generations, total_cost from get_user_usage_stats(%s)", [user]).fetchone()
    raw = conn.execute("select count(*), sum(cost) from generation_logs where user_id = %s", [user]).fetchone()
    assert stats == raw == (5, 5 * scalar(conn, "select calculate_cost('Midjourney', 100)"))
    budget = scalar(conn, "select daily_spent from check_budget(%s)", [user])
    assert budget == raw[1]
    # The next READ COMMITTED commit that logs anything applies what was left staged.
    with conn.transaction():
        conn.execute("set local role service_role")
        conn.execute("select public.log_generation(%s, 'Claude', 100)", [user])
    assert scalar(conn, "select count(*) from aurora_telemetry.pending_usage_deltas") == 0
    assert rollup_drift(conn) == 0
