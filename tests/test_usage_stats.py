"""Usage statistics and time series: every figure equals plain SQL over the raw rows.

Random logs for many users, generators and days (failed calls, explicit costs, a generator
added by an administrator) go in the way applications write them; then, for many ranges
that cut through hours, days and months, the statistics functions must agree exactly with
aggregates computed independently over public.generation_logs, and the latency
percentiles must be within 1% of percentile_disc.
"""

import datetime as dt
import random
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import as_role, make_user, raises_pg_error, scalar

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)
GENERATORS = ("Claude", "Imagen-3", "Midjourney", "Veo-2")
BUCKETS = ("hour", "day", "week", "month")


def independent_totals(conn, user, since, until, generator=None):
    """Totals by plain SQL over the raw rows (the superuser sees all rows)."""
    return conn.execute(
        """select count(*), count(*) filter (where success), count(*) filter (where not success),
                  coalesce(sum(cost), 0), coalesce(round(avg(time_ms), 2), 0)
             from public.generation_logs
            where user_id = %s
              and (%s::timestamptz is null or created_at >= %s)
              and (%s::timestamptz is null or created_at < %s)
              and (%s::text is null or generator = %s)""",
        [user, since, since, until, until, generator, generator]).fetchone()


def independent_series(conn, user, bucket, since, until):
    rows = conn.execute(
        """select date_trunc(%s, created_at, 'UTC'), generator, count(*),
                  count(*) filter (where success), count(*) filter (where not success),
                  sum(cost), round(avg(time_ms), 2),
                  percentile_disc(0.5) within group (order by time_ms),
                  percentile_disc(0.95) within group (order by time_ms),
                  percentile_disc(0.99) within group (order by time_ms)
             from public.generation_logs
            where user_id = %s
              and (%s::timestamptz is null or created_at >= %s)
              and (%s::timestamptz is null or created_at < %s)
            group by 1, 2 order by 1, 2""",
        [bucket, user, since, since, until, until]).fetchall()
    return rows


def close_to(estimate, exact):
    return abs(Decimal(estimate) - Decimal(exact)) <= Decimal("0.01") * Decimal(exact)


@pytest.fixture(scope="module")
def history(db):
    """Eight users with random histories over ~120 days; returns (users, ranges)."""
    rng = random.Random(20261204)
    with db.connect() as conn:
        conn.execute("insert into aurora_telemetry.generators (name, description) values ('Veo-2', 'video')")
        conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation, per_second,
                                                             per_million_input_tokens, per_million_cache_read_tokens)
                        values ('Veo-2', '-infinity', 0.01, 0.002, 3, 0.3)""")
        users = [make_user(conn) for _ in range(8)]
        rows = []
        for _ in range(3000):
            user = rng.choice(users[:7])  # the last user has no history at all
            created = NOW - dt.timedelta(seconds=rng.randrange(0, 120 * 86400))
            generator = rng.choice(GENERATORS)
            time_ms = int(rng.lognormvariate(7, 1.2)) if rng.random() > 0.03 else 0
            success = rng.random() > 0.15
            cost = Decimal(rng.randrange(0, 10**6)) / 10**6 if rng.random() < 0.05 else None
            metadata = Jsonb({"input_tokens": rng.randrange(0, 5000), "cache_read_tokens": rng.randrange(0, 50000)})
            rows.append((user, generator, time_ms, cost, success, metadata, created))
        # Multi-row inserts that each cover many users, as a batch writer would.
        with as_role(conn, "service_role") as cur:
            for start in range(0, len(rows), 500):
                cur.executemany(
                    """insert into public.generation_logs
                           (user_id, generator, time_ms, cost, success, metadata, created_at)
                       values (%s, %s, %s, %s, %s, %s, %s)""",
                    rows[start:start + 500])
        # and through the logging API, now
        with as_role(conn, "service_role") as cur:
            for user in users[:3]:
                cur.execute("select public.log_generation(%s, 'Claude', 321, false, 'rate limited')", [user])

    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ranges = [
        (None, None),
        (month_start, None),
        (None, NOW - dt.timedelta(days=40, minutes=17)),
        (NOW - dt.timedelta(days=95, hours=5, minutes=3), NOW - dt.timedelta(days=2, minutes=41)),
        (NOW - dt.timedelta(days=10, minutes=13), NOW - dt.timedelta(days=10, minutes=2)),
        (NOW - dt.timedelta(hours=30), NOW - dt.timedelta(hours=30)),
    ]
    for _ in range(4):
        a, b = sorted(NOW - dt.timedelta(seconds=rng.randrange(0, 125 * 86400)) for _ in range(2))
        ranges.append((a, b))
    return users, ranges


def test_statistics_equal_plain_sql_for_every_user_and_range(db, history):
    users, ranges = history
    with db.connect() as conn:
        for user in users:
            for since, until in ranges:
                with as_role(conn, "service_role") as cur:
                    got = cur.execute(
                        "select * from public.get_user_usage_stats(%s, %s, %s)", [user, since, until]).fetchone()
                    as_json = scalar(cur, "select public.get_user_usage_stats_json(%s, %s, %s)", [user, since, until])
                total, ok, failed, cost, avg = independent_totals(conn, user, since, until)
                assert got[:5] == (total, ok, failed, cost, avg), (user, since, until)
                assert as_json["totalGenerations"] == total
                assert as_json["successfulGenerations"] == ok
                assert as_json["failedGenerations"] == failed
                assert Decimal(str(as_json["totalCost"])) == cost
                assert Decimal(str(as_json["averageTimeMs"])) == avg
                breakdown = got[5]
                assert breakdown == as_json["generatorBreakdown"]
                for generator in GENERATORS:
                    g_total, _, _, g_cost, g_avg = independent_totals(conn, user, since, until, generator)
                    if g_total == 0:
                        assert generator not in breakdown
                        continue
                    assert breakdown[generator]["count"] == g_total
                    assert Decimal(str(breakdown[generator]["totalCost"])) == g_cost
                    assert Decimal(str(breakdown[generator]["averageTimeMs"])) == g_avg


@pytest.mark.parametrize("bucket", BUCKETS)
def test_time_series_equal_plain_sql_with_percentiles_within_one_percent(db, history, bucket):
    users, ranges = history
    with db.connect() as conn:
        for user in users[:4] + users[-1:]:
            for since, until in ranges[:6]:
                with as_role(conn, "service_role") as cur:
                    got = cur.execute(
                        "select * from public.get_user_usage_timeseries(%s, %s, %s, %s)",
                        [user, bucket, since, until]).fetchall()
                expected = independent_series(conn, user, bucket, since, until)
                assert [r[:7] for r in got] == [r[:7] for r in expected], (user, bucket, since, until)
                for g, e in zip(got, expected):
                    for estimate, exact in zip(g[7:], e[7:]):
                        assert close_to(estimate, exact), (g, e)


def rollup_drift(conn):
    """Rollup rows that differ from the same figures grouped from the raw rows."""
    return conn.execute(
        """with raw as (
               select user_id, lvl, date_trunc(lvl, created_at, 'UTC') as bucket_start, generator,
                      count(*) as n, count(*) filter (where success) as ok,
                      sum(cost) as cost, sum(time_ms) as t
                 from public.generation_logs, unnest(array['hour', 'day', 'month']) as lvl
                group by 1, 2, 3, 4)
           select count(*)
             from raw full join aurora_telemetry.usage_rollups r
               on r.user_id = raw.user_id and r.level = raw.lvl
              and r.bucket_start = raw.bucket_start and r.generator = raw.generator
            where r.user_id is null or raw.user_id is null
               or (r.generations, r.successful, r.total_cost, r.total_time_ms,
                   aurora_telemetry.sketch_count(r.latency_sketch))
                  is distinct from (raw.n, raw.ok, raw.cost, raw.t, raw.n)""").fetchone()[0]


def test_rollups_equal_the_raw_rows_at_every_level(db, history):
    with db.connect() as conn:
        assert rollup_drift(conn) == 0


def test_a_user_reads_only_their_own_statistics(db, history):
    users, _ = history
    me, other = users[0], users[1]
    with db.connect() as conn:
        with as_role(conn, "authenticated", sub=me) as cur:
            mine = cur.execute("select * from public.get_user_usage_stats(auth.uid())").fetchone()
            implicit = cur.execute("select * from public.get_user_usage_stats()").fetchone()
            series = cur.execute("select count(*) from public.get_user_usage_timeseries()").fetchone()[0]
        assert mine == implicit
        assert mine[0] == independent_totals(conn, me, None, None)[0]
        assert series > 0
        for query in ("select * from public.get_user_usage_stats(%s)",
                      "select public.get_user_usage_stats_json(%s)",
                      "select * from public.get_user_usage_timeseries(%s)"):
            with raises_pg_error("42501", "only their own usage"):
                with as_role(conn, "authenticated", sub=me) as cur:
                    cur.execute(query, [other])
            with raises_pg_error("42501", "permission denied for function"):
                with as_role(conn, "anon") as cur:
                    cur.execute(query, [other])


def test_bad_arguments_get_clear_errors(db, history):
    users, _ = history
    with db.connect() as conn:
        with raises_pg_error("22023", "bucket must be one of hour, day, week, month"):
            with as_role(conn, "service_role") as cur:
                cur.execute("select * from public.get_user_usage_timeseries(%s, 'year')", [users[0]])
        with raises_pg_error("22023", "since must not be later than until"):
            with as_role(conn, "service_role") as cur:
                cur.execute("select * from public.get_user_usage_stats(%s, now(), now() - interval '1 day')",
                            [users[0]])
        with raises_pg_error("22004", "user_id must not be NULL"):
            with as_role(conn, "authenticated") as cur:  # no sub claim
                cur.execute("select * from public.get_user_usage_stats()")


def test_statistics_follow_deletes_updates_and_repricing(db, history):
    users, ranges = history
    victim, survivor = users[5], users[6]
    since, until = NOW - dt.timedelta(days=30), NOW
    with db.connect() as conn:
        # An administrator fixes Claude's price for the last 60 days and reprices 30 of them.
        conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                        values ('Claude', %s, 0.02)""", [NOW - dt.timedelta(days=60)])
        changed = scalar(conn, "select public.reprice_generation_logs(%s, %s)", [since, until])
        assert changed > 0
        assert scalar(conn, "select public.reprice_generation_logs(%s, %s)", [since, until]) == 0
        wrong = scalar(conn, """select count(*) from public.generation_logs
                                 where generator = 'Claude' and created_at >= %s and created_at < %s
                                   and cost <> case when success then 0.02 else 0 end""", [since, until])
        assert wrong == 0
        assert rollup_drift(conn) == 0

        conn.execute("delete from public.generation_logs where user_id = %s and time_ms < 500", [survivor])
        conn.execute("delete from auth.users where id = %s", [victim])
        assert scalar(conn, "select count(*) from aurora_telemetry.usage_rollups where user_id = %s", [victim]) == 0
        for since, until in ranges:
            with as_role(conn, "service_role") as cur:
                got = cur.execute("select * from public.get_user_usage_stats(%s, %s, %s)",
                                  [survivor, since, until]).fetchone()
            assert got[:5] == independent_totals(conn, survivor, since, until)
        assert rollup_drift(conn) == 0


def test_only_administrators_reprice(db, history):
    with db.connect() as conn:
        for role in ("anon", "authenticated", "service_role"):
            with raises_pg_error("42501", "permission denied for function reprice_generation_logs"):
                with as_role(conn, role) as cur:
                    cur.execute("select public.reprice_generation_logs(now() - interval '1 day', now())")


def _insert(conn, user, count=1):
    for _ in range(count):
        conn.execute("""insert into public.generation_logs (user_id, generator, time_ms)
                        values (%s, 'Claude', 700)""", [user])


def _roll_back_a_flushing_delete(conn, user):
    """A DELETE applies what is staged before subtracting; rolling it back undoes that too."""
    with conn.transaction() as savepoint:
        conn.execute("delete from public.generation_logs where user_id = %s", [user])
        raise psycopg.Rollback(savepoint)


# What a transaction does between its inserts and its commit. The commit-time flush runs once
# per transaction, however many deltas were staged; each of these must still leave nothing
# behind in pending_usage_deltas and the rollups exact.
TRANSACTION_SHAPES = {
    "many statements": lambda conn, user: _insert(conn, user, 300),
    "a delete flushes midway, then more inserts": lambda conn, user: (
        _insert(conn, user, 3),
        conn.execute("""delete from public.generation_logs
                         where id = (select id from public.generation_logs where user_id = %s limit 1)""", [user]),
        _insert(conn, user, 3)),
    "a rolled-back savepoint undid a flush": lambda conn, user: (
        _insert(conn, user, 3), _roll_back_a_flushing_delete(conn, user)),
    "a rolled-back savepoint undid a flush, then more inserts": lambda conn, user: (
        _insert(conn, user, 3), _roll_back_a_flushing_delete(conn, user), _insert(conn, user, 2)),
    "deferred triggers forced to run early": lambda conn, user: (
        _insert(conn, user, 2), conn.execute("set constraints all immediate"), _insert(conn, user, 2)),
}


@pytest.mark.parametrize("shape", TRANSACTION_SHAPES)
def test_every_commit_applies_everything_it_staged(db, shape):
    with db.connect() as conn:
        user = make_user(conn)
        with conn.transaction():
            TRANSACTION_SHAPES[shape](conn, user)
        left = scalar(conn, "select count(*) from aurora_telemetry.pending_usage_deltas where user_id = %s", [user])
        assert left == 0
        assert rollup_drift(conn) == 0
        with as_role(conn, "service_role") as cur:
            got = cur.execute("select * from public.get_user_usage_stats(%s)", [user]).fetchone()
        assert got[:5] == independent_totals(conn, user, None, None)


def staging_table_scans(conn):
    """(sequential, index) scans of the staging table so far, with this backend's counts in."""
    conn.execute("select pg_stat_force_next_flush()")
    return conn.execute("""select seq_scan, idx_scan from pg_stat_all_tables
                            where relid = 'aurora_telemetry.pending_usage_deltas'::regclass""").fetchone()


def test_statistics_read_staged_rows_by_index_never_the_whole_table(db):
    """Under steady logging the staging table holds thousands of dead rows between vacuums;
    the statistics and check_budget must read a user's staged rows by index, even when their
    kept plans were made while the table was empty."""
    with db.connect() as conn:
        user = make_user(conn)
        _insert(conn, user, 3)
        conn.execute("vacuum aurora_telemetry.pending_usage_deltas")  # empty: a seq scan looks cheapest
        before = staging_table_scans(conn)
        for _ in range(3):
            with as_role(conn, "authenticated", sub=user) as cur:
                cur.execute("select * from public.get_user_usage_stats()").fetchone()
                cur.execute("select * from public.get_user_usage_timeseries(auth.uid(), 'day')").fetchall()
                cur.execute("select * from public.check_budget()").fetchone()
        after = staging_table_scans(conn)
        assert after[0] == before[0]
        assert after[1] >= before[1] + 9
