"""Alerts over pg_notify, heard by real LISTEN connections, and budgets.

Each alert must arrive exactly once per crossing or window, only after commit, never after a
rollback, also when many connections push at once; figures in payloads and in check_budget
must equal plain SQL over the raw rows.
"""

import contextlib
import datetime as dt
import json
import threading
from decimal import Decimal

import psycopg
import pytest

from conftest import as_role, make_user, raises_pg_error, scalar

UTC = dt.timezone.utc
MIDJOURNEY = Decimal("0.06")  # the seed's price per Midjourney call


@contextlib.contextmanager
def listening(db, *channels):
    """A separate connection LISTENing on `channels`; yields a function that returns the
    notifications received so far as (channel, payload dict) pairs."""
    with db.connect() as listener:
        for channel in channels:
            listener.execute(f"listen {channel}")
        received = []

        def collect(wait=0.5):
            for note in listener.notifies(timeout=wait):
                received.append((note.channel, json.loads(note.payload)))
                assert len(note.payload.encode()) < 8000
            return list(received)

        yield collect


@contextlib.contextmanager
def setting(conn, name, value):
    """Set an administrator setting for the duration of a block."""
    conn.execute("""insert into aurora_telemetry.settings (name, value) values (%s, %s)
                    on conflict (name) do update set value = excluded.value""", [name, json.dumps(value)])
    try:
        yield
    finally:
        conn.execute("delete from aurora_telemetry.settings where name = %s", [name])


def log_calls(conn, user, count, generator="Midjourney", time_ms=1000, success=True, created_at=None):
    """`count` calls in one service_role transaction, one INSERT statement each."""
    with as_role(conn, "service_role") as cur:
        cur.executemany(
            """insert into public.generation_logs (user_id, generator, time_ms, success, created_at)
               values (%s, %s, %s, %s, coalesce(%s, now()))""",
            [(user, generator, time_ms, success, created_at)] * count)


def add_generator(conn, name, price="0.01"):
    """A generator of its own, so per-generator counters start from zero in each test."""
    conn.execute("insert into aurora_telemetry.generators (name) values (%s)", [name])
    conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                    values (%s, '-infinity', %s)""", [name, Decimal(price)])


def daily_cost(conn, user):
    return scalar(conn, """select coalesce(sum(cost), 0) from public.generation_logs
                            where user_id = %s and created_at >= date_trunc('day', now(), 'UTC')""", [user])


def test_one_cost_alert_when_a_user_crosses_ten_dollars_in_many_transactions(db, conn):
    user = make_user(conn)
    with listening(db, "cost_alert") as heard:
        for _ in range(17):  # 17 x 10 x $0.06 = $10.20, crossing $10.00 in the 17th transaction
            log_calls(conn, user, 10)
        log_calls(conn, user, 10)  # already over: no second alert
        alerts = [payload for channel, payload in heard() if payload["user_id"] == str(user)]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["period"] == "day"
    assert Decimal(str(alert["threshold"])) == Decimal("10")
    assert Decimal(str(alert["daily_cost"])) == Decimal("10.20")
    assert alert["day"] == dt.datetime.now(UTC).strftime("%Y-%m-%d")
    assert daily_cost(conn, user) == Decimal("10.80")
    row = conn.execute("select kind, scope, user_id, payload from aurora_telemetry.alerts where id = %s",
                       [alert["alert_id"]]).fetchone()
    assert row[:3] == ("cost_alert", "user", user)
    assert row[3]["daily_cost"] == alert["daily_cost"]


def test_a_rolled_back_crossing_sends_nothing_and_leaves_no_trace(db, conn):
    user = make_user(conn)
    with listening(db, "cost_alert") as heard:
        with pytest.raises(RuntimeError):
            with as_role(conn, "service_role") as cur:
                cur.executemany("insert into public.generation_logs (user_id, generator, time_ms) values (%s, 'Midjourney', 10)",
                                [(user,)] * 200)
                raise RuntimeError("the application gives up")
        assert [p for _, p in heard() if p["user_id"] == str(user)] == []
    assert scalar(conn, "select count(*) from aurora_telemetry.alerts where user_id = %s", [user]) == 0
    assert scalar(conn, "select count(*) from aurora_telemetry.spend_totals where user_id = %s", [user]) == 0


def test_one_cost_alert_when_many_connections_push_a_user_over_at_once(db, conn):
    user = make_user(conn)
    barrier = threading.Barrier(10)
    errors = []

    def writer():
        with db.connect() as c:
            barrier.wait()
            try:
                for _ in range(5):  # 50 concurrent transactions, $12.00 in all
                    log_calls(c, user, 4)
            except psycopg.Error as error:
                errors.append(error)

    with listening(db, "cost_alert") as heard:
        threads = [threading.Thread(target=writer) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alerts = [p for _, p in heard(1.0) if p["user_id"] == str(user)]
    assert errors == []
    assert daily_cost(conn, user) == Decimal("12.00")
    assert len(alerts) == 1
    assert Decimal("10") <= Decimal(str(alerts[0]["daily_cost"])) < Decimal("10.25")


def test_per_user_budgets_and_further_levels(db, conn):
    user, other = make_user(conn), make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit) values (%s, 1.00)", [user])
    with setting(conn, "cost_alert_levels", [1, 2]), listening(db, "cost_alert") as heard:
        for _ in range(40):  # $2.40 for each user
            log_calls(conn, user, 1)
            log_calls(conn, other, 1)
        alerts = heard()
    mine = [p for _, p in alerts if p["user_id"] == str(user)]
    assert [Decimal(str(p["threshold"])) for p in mine] == [Decimal("1"), Decimal("2")]
    assert [Decimal(str(p["daily_cost"])) for p in mine] == [Decimal("1.02"), Decimal("2.04")]
    assert [p for _, p in alerts if p["user_id"] == str(other)] == []  # the default $10 still applies


def test_monthly_budget_alerts_with_a_period(db, conn):
    user = make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, monthly_limit) values (%s, 0.50)", [user])
    with listening(db, "cost_alert") as heard:
        for _ in range(10):
            log_calls(conn, user, 1)
        alerts = [p for _, p in heard() if p["user_id"] == str(user)]
    assert len(alerts) == 1
    assert alerts[0]["period"] == "month"
    assert alerts[0]["month"] == dt.datetime.now(UTC).strftime("%Y-%m")
    assert Decimal(str(alerts[0]["monthly_cost"])) == Decimal("0.54")


def test_check_budget_equals_plain_sql(db, conn):
    user = make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit, monthly_limit) values (%s, 1.00, 3.00)",
                 [user])
    log_calls(conn, user, 5)
    log_calls(conn, user, 3, generator="Claude", success=False)
    yesterday = dt.datetime.now(UTC) - dt.timedelta(days=1)
    if yesterday.month == dt.datetime.now(UTC).month:
        log_calls(conn, user, 4, created_at=yesterday)
    with as_role(conn, "authenticated", sub=user) as cur:
        got = cur.execute("select * from public.check_budget(generator => 'Midjourney')").fetchone()
    month = scalar(conn, """select coalesce(sum(cost), 0) from public.generation_logs
                             where user_id = %s and created_at >= date_trunc('month', now(), 'UTC')""", [user])
    day = daily_cost(conn, user)
    assert got == (day + MIDJOURNEY <= 1 and month + MIDJOURNEY <= 3,
                   day, Decimal("1"), max(1 - day, 0), month, Decimal("3"), max(3 - month, 0), False, MIDJOURNEY)
    with raises_pg_error("42501", "only their own usage"):
        with as_role(conn, "authenticated", sub=make_user(conn)) as cur:
            cur.execute("select * from public.check_budget(%s)", [user])


def test_a_hard_limit_refuses_paid_calls_but_never_free_ones(db, conn):
    user = make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit, hard_limit) values (%s, 0.10, true)",
                 [user])
    with as_role(conn, "service_role") as cur:
        cur.execute("select log_generation(%s, 'Midjourney', 100)", [user])
        cur.execute("select log_generation(%s, 'Midjourney', 100)", [user])  # reaches $0.12
    with raises_pg_error("23514", "budget exhausted", "daily hard limit"):
        with as_role(conn, "service_role") as cur:
            cur.execute("select log_generation(%s, 'Midjourney', 100)", [user])
    with as_role(conn, "service_role") as cur:  # a failed call costs nothing and is logged
        cur.execute("select log_generation(%s, 'Midjourney', 100, false, 'timeout')", [user])
    assert scalar(conn, "select count(*) from public.generation_logs where user_id = %s", [user]) == 3


def test_error_rate_alert_needs_volume_fires_once_and_resolves(db, conn):
    add_generator(conn, "Flaky-1")
    user = make_user(conn)
    channel = "error_rate_alert"
    with listening(db, channel) as heard:
        log_calls(conn, user, 19, generator="Flaky-1", success=False)  # 100% failed, but only 19 calls
        assert [p for _, p in heard() if p.get("generator") == "Flaky-1"] == []
        log_calls(conn, user, 1, generator="Flaky-1", success=False)   # the 20th call: firing
        log_calls(conn, user, 5, generator="Flaky-1", success=False)   # still firing: no repeat
        log_calls(conn, user, 100, generator="Flaky-1", success=True)  # 25/125 = 20%: resolved
        events = heard()
    by_generator = [p for _, p in events if p.get("generator") == "Flaky-1"]
    assert [p["status"] for p in by_generator] == ["firing", "resolved"]
    assert by_generator[0]["calls"] == 20 and by_generator[0]["failed"] == 20
    by_user = [p for _, p in events if p.get("user_id") == str(user)]
    assert [p["status"] for p in by_user] == ["firing", "resolved"]
    alert = conn.execute("""select resolved_at is not null from aurora_telemetry.alerts
                             where kind = 'error_rate_alert' and generator = 'Flaky-1'""").fetchall()
    assert alert == [(True,)]


def test_latency_alert_against_the_trailing_baseline(db, conn):
    add_generator(conn, "Slow-1")
    user = make_user(conn)
    now = dt.datetime.now(UTC)
    for days_ago in range(1, 4):
        log_calls(conn, user, 10, generator="Slow-1", time_ms=100, created_at=now - dt.timedelta(days=days_ago))
    with listening(db, "latency_alert") as heard:
        log_calls(conn, user, 19, generator="Slow-1", time_ms=1000)
        assert heard() == []  # below the minimum volume
        log_calls(conn, user, 1, generator="Slow-1", time_ms=1000)
        log_calls(conn, user, 400, generator="Slow-1", time_ms=100)
        events = [p for _, p in heard() if p["generator"] == "Slow-1"]
    assert [p["status"] for p in events] == ["firing", "resolved"]
    assert events[0]["average_time_ms"] == 1000 and events[0]["baseline_average_time_ms"] == 100


def test_usage_anomaly_against_the_users_own_history(db, conn):
    add_generator(conn, "Steady-1", price="0.001")
    regular, newcomer = make_user(conn), make_user(conn)
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with as_role(conn, "service_role") as cur:
        cur.executemany(
            """insert into public.generation_logs (user_id, generator, time_ms, created_at)
               values (%s, 'Steady-1', 50, %s)""",
            [(regular, hour - dt.timedelta(hours=h, minutes=m)) for h in range(1, 49) for m in (10, 20)])
    with listening(db, "usage_anomaly") as heard:
        log_calls(conn, regular, 40, generator="Steady-1")
        log_calls(conn, newcomer, 40, generator="Steady-1")  # no history: not an anomaly
        events = heard()
    calls = [p for _, p in events if p["metric"] == "calls"]
    assert [p["user_id"] for p in calls] == [str(regular)]
    assert calls[0]["value"] == 40 and calls[0]["median"] == 2


def test_users_read_only_their_own_alerts(db, conn):
    user, other = make_user(conn), make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit) values (%s, 0.05), (%s, 0.05)",
                 [user, other])
    log_calls(conn, user, 1)
    log_calls(conn, other, 1)
    with as_role(conn, "authenticated", sub=user) as cur:
        seen = cur.execute("select user_id, kind from public.usage_alerts").fetchall()
    assert seen == [(user, "cost_alert")]
    with raises_pg_error("42501", "permission denied"):
        with as_role(conn, "anon") as cur:
            cur.execute("select * from public.usage_alerts")
    with raises_pg_error("42501", "permission denied"):
        with as_role(conn, "authenticated", sub=user) as cur:
            cur.execute("update aurora_telemetry.budgets set daily_limit = 1000")


def test_a_failing_alert_never_costs_the_logged_rows(db, conn):
    user = make_user(conn)
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit) values (%s, 0.05)", [user])
    conn.execute("alter table aurora_telemetry.alert_state add constraint broken check (false) not valid")
    warnings = []
    conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary))
    try:
        with as_role(conn, "service_role") as cur:
            cur.execute("insert into public.generation_logs (user_id, generator, time_ms) values (%s, 'Midjourney', 5)",
                        [user])
    finally:
        conn.execute("alter table aurora_telemetry.alert_state drop constraint broken")
    assert scalar(conn, "select count(*) from public.generation_logs where user_id = %s", [user]) == 1
    assert scalar(conn, "select total_generations from get_user_usage_stats(%s)", [user]) == 1
    assert any("alert evaluation failed" in w for w in warnings)
    assert scalar(conn, "select count(*) from aurora_telemetry.alert_failures where error like '%%broken%%'") >= 1
