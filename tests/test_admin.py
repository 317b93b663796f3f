"""Administrators: who they are, what only they may do, and what they see.

An administrator is a member of the role aurora_telemetry_admin or, on Supabase, a user
whose JWT app_metadata has "aurora_telemetry_admin": true. An ordinary signed-in user gets
a permission error (42501) from every administrators' function and sees nothing of other
users through any view or function; a flag in user_metadata (which users edit themselves)
makes nobody an administrator. Every figure the administrators' analytics and the billing
export return is compared with plain SQL over the raw rows.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest

from conftest import as_role, make_user, raises_pg_error, scalar

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)
GENERATORS = ("Claude", "Imagen-3", "Midjourney")

# Every administrators' function, called with valid arguments.
ADMIN_CALLS = {
    "billing_usage": "select * from public.billing_usage(current_date - 30, current_date + 1)",
    "admin_top_users_by_cost": "select * from public.admin_top_users_by_cost()",
    "admin_daily_totals": "select * from public.admin_daily_totals(now() - interval '30 days', now())",
    "admin_generator_performance": "select * from public.admin_generator_performance()",
    "telemetry_dashboard_html (all users)": "select public.telemetry_dashboard_html(user_id => null)",
    "reprice_generation_logs": "select public.reprice_generation_logs(now() - interval '1 day', now())",
}
# Administrators change the catalogs and settings; nobody else may.
ADMIN_WRITES = {
    "prices": """insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                 values ('Claude', now(), 99)""",
    "generators": "insert into aurora_telemetry.generators (name) values ('Evil-1')",
    "settings": """insert into aurora_telemetry.settings (name, value) values ('redacted_metadata_keys', '[]')""",
    "generation_logs": "update public.generation_logs set cost = 0",
}


def jwt(user, app_metadata=None, user_metadata=None):
    claims = {"sub": str(user), "role": "authenticated"}
    if app_metadata is not None:
        claims["app_metadata"] = app_metadata
    if user_metadata is not None:
        claims["user_metadata"] = user_metadata
    return claims


@pytest.fixture(scope="module")
def people(db):
    """Six users with random histories over ~45 days (backdated rows, failures); the last
    two are the administrator signed in through Supabase and an ordinary user."""
    rng = random.Random(42)
    with db.connect() as conn:
        users = [make_user(conn) for _ in range(6)]
        rows = []
        for _ in range(1500):
            user = rng.choice(users[:5])
            rows.append((user, rng.choice(GENERATORS), int(rng.lognormvariate(7, 1)),
                         rng.random() > 0.15,
                         NOW - dt.timedelta(seconds=rng.randrange(0, 45 * 86400))))
        with as_role(conn, "service_role") as cur:
            cur.executemany(
                """insert into public.generation_logs (user_id, generator, time_ms, success, created_at)
                   values (%s, %s, %s, %s, %s)""", rows)
    return users


@pytest.fixture
def ordinary(people):
    return people[-1]


@pytest.fixture
def jwt_admin(people):
    return people[-2]


# --- who is an administrator -------------------------------------------------------------

@pytest.mark.parametrize("call", list(ADMIN_CALLS))
@pytest.mark.parametrize("claims", [
    "plain",
    "user_metadata says admin",
    "app_metadata says \"true\" as a string",
    "app_metadata role",
])
def test_ordinary_users_get_a_permission_error_from_every_admin_function(conn, people, call, claims):
    user = people[0]
    forged = {
        "plain": jwt(user),
        "user_metadata says admin": jwt(user, user_metadata={"aurora_telemetry_admin": True}),
        "app_metadata says \"true\" as a string": jwt(user, app_metadata={"aurora_telemetry_admin": "true"}),
        "app_metadata role": jwt(user, app_metadata={"role": "admin"}, user_metadata={"role": "aurora_telemetry_admin"}),
    }[claims]
    with raises_pg_error("42501"), as_role(conn, "authenticated", claims=forged) as cur:
        cur.execute(ADMIN_CALLS[call])


@pytest.mark.parametrize("call", list(ADMIN_CALLS))
@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_api_roles_other_than_administrators_are_refused_too(conn, people, call, role):
    with raises_pg_error("42501"), as_role(conn, role) as cur:
        cur.execute(ADMIN_CALLS[call])


@pytest.mark.parametrize("write", list(ADMIN_WRITES))
@pytest.mark.parametrize("who", ["ordinary", "jwt_admin"])
def test_only_the_administrator_role_changes_catalogs_settings_and_logs(conn, people, write, who):
    user = people[-1] if who == "ordinary" else people[-2]
    claims = jwt(user, app_metadata={"aurora_telemetry_admin": True} if who == "jwt_admin" else None)
    before = scalar(conn, "select count(*) || '/' || sum(cost) from public.generation_logs")
    with raises_pg_error("42501"), as_role(conn, "authenticated", claims=claims) as cur:
        cur.execute(ADMIN_WRITES[write])
    assert scalar(conn, "select count(*) || '/' || sum(cost) from public.generation_logs") == before
    # The database role may.
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("set local role aurora_telemetry_admin")
        cur.execute(ADMIN_WRITES[write])


@pytest.mark.parametrize("call", list(ADMIN_CALLS))
def test_administrators_by_role_and_by_jwt_may_call_every_admin_function(conn, people, jwt_admin, call):
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("set local role aurora_telemetry_admin")
        cur.execute(ADMIN_CALLS[call])
    claims = jwt(jwt_admin, app_metadata={"aurora_telemetry_admin": True})
    if call == "reprice_generation_logs":
        # It rewrites stored costs: a change, which takes the database role (README).
        with raises_pg_error("42501"), as_role(conn, "authenticated", claims=claims) as cur:
            cur.execute(ADMIN_CALLS[call])
        return
    with conn.transaction(force_rollback=True):
        with as_role(conn, "authenticated", claims=claims) as cur:
            cur.execute(ADMIN_CALLS[call])


# --- nothing of other users for ordinary users --------------------------------------------

def test_an_ordinary_user_sees_nothing_of_other_users_anywhere(conn, people, ordinary):
    """The user has logs of their own here; everything they may read must be about them."""
    other = people[0]
    with as_role(conn, "service_role") as cur:
        cur.execute("select public.log_generation(%s, 'Claude', 1234)", [ordinary])
    with as_role(conn, "authenticated", sub=ordinary) as cur:
        assert {r[0] for r in cur.execute("select user_id from public.generation_logs")} == {ordinary}
        for view in ("usage_recent_generations", "usage_success_rate_by_generator",
                     "usage_response_time_by_generator"):
            rows = cur.execute(f"select * from public.{view}").fetchall()
            assert len(rows) == 1, view
        assert cur.execute("select total_generations from public.usage_cost_this_month").fetchone() == (1,)
        assert scalar(cur, "select (get_user_usage_stats()).total_generations") == 1
        csv_text = scalar(cur, "select public.export_generation_logs_csv()")
        assert csv_text.count("\r\n") == 2 and str(other) not in csv_text
        page = scalar(cur, "select public.telemetry_dashboard_html()")
        assert str(other) not in page
        assert cur.execute("select count(*) from aurora_telemetry.usage_rollups where user_id <> %s",
                           [ordinary]).fetchone() == (0,)
    asking_for_another = [
        "select * from public.get_user_usage_stats(%s)",
        "select * from public.get_user_usage_timeseries(%s)",
        "select public.export_generation_logs_csv(user_id => %s)",
        "select public.telemetry_dashboard_html(user_id => %s)",
    ]
    for query in asking_for_another:
        with raises_pg_error("42501"), as_role(conn, "authenticated", sub=ordinary) as cur:
            cur.execute(query, [other])


# --- what administrators see ------------------------------------------------------------

def test_a_jwt_administrator_reads_every_users_logs_and_statistics(conn, people, jwt_admin):
    claims = jwt(jwt_admin, app_metadata={"aurora_telemetry_admin": True})
    with as_role(conn, "authenticated", claims=claims) as cur:
        assert scalar(cur, "select count(*) from public.generation_logs") == scalar(
            conn, "select count(*) from public.generation_logs")
        stats = cur.execute("select total_generations, total_cost from public.get_user_usage_stats(%s)",
                            [people[0]]).fetchone()
        text = scalar(cur, "select public.export_generation_logs_csv(user_id => %s)", [people[1]])
    assert stats == conn.execute(
        "select count(*), sum(cost) from public.generation_logs where user_id = %s", [people[0]]).fetchone()
    assert text.count("\r\n") - 1 == scalar(
        conn, "select count(*) from public.generation_logs where user_id = %s", [people[1]])


def test_jwt_administrators_read_all_alerts(conn, people, jwt_admin, ordinary):
    conn.execute(
        """insert into aurora_telemetry.alerts (kind, scope, user_id, period, window_start, figures, payload)
           values ('cost_alert', 'user', %s, 'day', date_trunc('day', now()), '{}', '{}')""", [people[0]])
    total = scalar(conn, "select count(*) from aurora_telemetry.alerts")
    with as_role(conn, "authenticated", claims=jwt(jwt_admin, app_metadata={"aurora_telemetry_admin": True})) as cur:
        assert scalar(cur, "select count(*) from aurora_telemetry.alerts") == total
    with as_role(conn, "authenticated", sub=ordinary) as cur:
        assert scalar(cur, "select count(*) from aurora_telemetry.alerts where user_id <> %s", [ordinary]) == 0


def admin_rows(conn, query, params=None):
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("set local role aurora_telemetry_admin")
        return cur.execute(query, params).fetchall()


RANGES = [
    (None, None),
    (NOW - dt.timedelta(days=20, minutes=13), NOW - dt.timedelta(days=3, hours=2, minutes=1)),
    (NOW - dt.timedelta(hours=30, minutes=7), None),
    (NOW - dt.timedelta(days=70), NOW - dt.timedelta(days=44, minutes=59)),
]


def where(since, until):
    return ("(%(since)s::timestamptz is null or created_at >= %(since)s) "
            "and (%(until)s::timestamptz is null or created_at < %(until)s)")


@pytest.mark.parametrize("since, until", RANGES)
def test_top_users_by_cost_equal_plain_sql(conn, people, since, until):
    expected = conn.execute(f"""
        select user_id, count(*), count(*) filter (where success), count(*) filter (where not success),
               sum(cost), round(avg(time_ms), 2)
          from public.generation_logs where {where(since, until)}
         group by user_id order by sum(cost) desc, count(*) desc, user_id limit 3""",
        {"since": since, "until": until}).fetchall()
    got = admin_rows(conn, "select * from public.admin_top_users_by_cost(%s, %s, 3)", [since, until])
    assert [row[0] for row in got] == list(range(1, len(expected) + 1))
    assert [tuple(row[1:]) for row in got] == expected


@pytest.mark.parametrize("since, until", RANGES)
def test_daily_totals_equal_plain_sql(conn, people, since, until):
    expected = conn.execute(f"""
        select (created_at at time zone 'UTC')::date, count(*), count(*) filter (where success),
               count(*) filter (where not success), sum(cost), round(avg(time_ms), 2), count(distinct user_id)
          from public.generation_logs where {where(since, until)}
         group by 1 order by 1""", {"since": since, "until": until}).fetchall()
    got = admin_rows(conn, "select * from public.admin_daily_totals(%s, %s)", [since, until])
    assert got == expected
    if since is None:
        assert len(got) >= 40


@pytest.mark.parametrize("since, until", RANGES)
def test_generator_performance_equals_plain_sql_with_percentiles_within_one_percent(conn, people, since, until):
    expected = conn.execute(f"""
        select generator, count(*), count(*) filter (where success), count(*) filter (where not success),
               round(100.0 * count(*) filter (where success) / count(*), 2), sum(cost), round(avg(time_ms), 2),
               percentile_disc(0.5) within group (order by time_ms),
               percentile_disc(0.95) within group (order by time_ms),
               percentile_disc(0.99) within group (order by time_ms)
          from public.generation_logs where {where(since, until)}
         group by generator order by generator""", {"since": since, "until": until}).fetchall()
    got = admin_rows(conn, "select * from public.admin_generator_performance(%s, %s)", [since, until])
    assert [row[:7] for row in got] == [row[:7] for row in expected]
    for row, exact in zip(got, expected):
        for estimate, value in zip(row[7:], exact[7:]):
            assert abs(estimate - value) <= Decimal("0.01") * value, (row, exact)


# --- billing ------------------------------------------------------------------------------

def billing(conn, start, end):
    return admin_rows(conn, "select * from public.billing_usage(%s, %s)", [start, end])


@pytest.mark.parametrize("days_back, days", [(45, 46), (20, 7), (1, 1), (60, 10)])
def test_billing_totals_equal_the_logged_costs_of_the_period(conn, people, days_back, days):
    start = NOW.date() - dt.timedelta(days=days_back)
    end = start + dt.timedelta(days=days)
    rows = billing(conn, start, end)
    expected = conn.execute("""
        select user_id, generator, count(*), sum(cost)
          from public.generation_logs
         where created_at >= %(start)s::timestamp at time zone 'UTC'
           and created_at < %(end)s::timestamp at time zone 'UTC'
         group by user_id, generator order by user_id, generator""", {"start": start, "end": end}).fetchall()
    assert [row[:4] for row in rows] == expected
    total = scalar(conn, """select coalesce(sum(cost), 0) from public.generation_logs
                             where created_at >= %(start)s::timestamp at time zone 'UTC'
                               and created_at < %(end)s::timestamp at time zone 'UTC'""",
                   {"start": start, "end": end})
    assert sum((row[3] for row in rows), Decimal(0)) == total
    for user_id, generator, quantity, amount, micro, key, event in rows:
        assert micro == amount * 1_000_000
        assert event["identifier"] == key
        assert event["payload"] == {"user_id": str(user_id), "generator": generator, "value": str(micro)}
        last_second = dt.datetime.combine(end, dt.time(), UTC) - dt.timedelta(seconds=1)
        assert event["timestamp"] == int(last_second.timestamp())
        assert event["event_name"]


def test_billing_idempotency_keys_are_stable_and_distinct(conn, people):
    start, end = NOW.date() - dt.timedelta(days=30), NOW.date() + dt.timedelta(days=1)
    first = billing(conn, start, end)
    # More usage in the period changes amounts, never keys.
    with as_role(conn, "service_role") as cur:
        cur.execute("select public.log_generation(%s, 'Midjourney', 10)", [people[0]])
    second = billing(conn, start, end)
    keys = {(r[0], r[1]): r[5] for r in first}
    assert {(r[0], r[1]): r[5] for r in second} == keys
    assert len(set(keys.values())) == len(keys)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys.values())
    other_period = billing(conn, start + dt.timedelta(days=1), end)
    assert not {r[5] for r in other_period} & set(keys.values())


def test_billing_refuses_an_empty_or_reversed_period(conn, people):
    today = NOW.date()
    for start, end in ((today, today), (today, today - dt.timedelta(days=1))):
        with raises_pg_error("22023", "period_end"), conn.transaction(), conn.cursor() as cur:
            cur.execute("set local role aurora_telemetry_admin")
            cur.execute("select * from public.billing_usage(%s, %s)", [start, end])
    with raises_pg_error("22004", "period_start"), conn.transaction(), conn.cursor() as cur:
        cur.execute("set local role aurora_telemetry_admin")
        cur.execute("select * from public.billing_usage(null, %s)", [today])


def test_the_permission_error_says_who_administrators_are(conn, people):
    with raises_pg_error("42501", "administrators only", "aurora_telemetry_admin", "app_metadata"), \
            as_role(conn, "authenticated", sub=people[0]) as cur:
        cur.execute("select * from public.admin_generator_performance()")
