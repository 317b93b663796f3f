"""The seed's four analytics queries as views in public, read by signed-in users.

Each view must give the same rows as the seed's query (verbatim, run by the same user; see
test_analytics_queries.py for the queries themselves), under the same column names, plus
latency percentiles that equal percentile_disc over the user's own successful calls,
computed independently by the superuser. Data differ per user in every respect the views
measure, so any other user's rows would change an answer.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from conftest import KNOWN_GENERATORS, as_role, make_user, raises_pg_error
from test_analytics_queries import SEED_QUERIES

# View: (the seed query it serves, the extra columns it adds)
VIEWS = {
    "usage_recent_generations": ("recent generations", ()),
    "usage_cost_this_month": ("total cost this month", ()),
    "usage_success_rate_by_generator": ("success rate by generator", ()),
    "usage_response_time_by_generator": ("average response time", ("p50_time_ms", "p95_time_ms")),
}
# Rows of the views that have no natural order are compared sorted.
ORDERED = {"usage_recent_generations"}

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def people(db):
    """Four users with random histories (failures, this month and earlier months); a fifth
    with none."""
    rng = random.Random(5)
    now = dt.datetime.now(UTC)
    with db.connect() as conn:
        users = [make_user(conn) for _ in range(5)]
        rows = []
        for n, user in enumerate(users[:4]):
            for _ in range(60 + 25 * n):
                rows.append((
                    user,
                    rng.choice(KNOWN_GENERATORS),
                    int(rng.lognormvariate(6 + n * 0.3, 1.0)),
                    rng.random() > 0.2 + 0.1 * n,
                    Decimal(rng.randrange(0, 90000)) / 10**6 if rng.random() < 0.3 else None,
                    now - dt.timedelta(seconds=rng.randrange(0, 75 * 86400)),
                    Jsonb({"n": n}),
                ))
        with as_role(conn, "service_role") as cur:
            cur.executemany(
                """insert into public.generation_logs (user_id, generator, time_ms, success, cost, created_at, metadata)
                   values (%s, %s, %s, %s, %s, %s, %s)""", rows)
    return users


def as_user(conn, user, query):
    with as_role(conn, "authenticated", sub=user) as cur:
        cur.execute(query)
        return [c.name for c in cur.description], cur.fetchall()


def own_percentiles(conn, user):
    """percentile_disc of the user's successful calls per generator, by the superuser."""
    rows = conn.execute(
        """select generator,
                  percentile_disc(0.5) within group (order by time_ms),
                  percentile_disc(0.95) within group (order by time_ms)
             from public.generation_logs where user_id = %s and success group by generator""",
        [user]).fetchall()
    return {g: (p50, p95) for g, p50, p95 in rows}


@pytest.mark.parametrize("view", list(VIEWS))
def test_each_view_equals_the_seed_query_for_every_user(conn, people, view):
    seed_name, extra = VIEWS[view]
    seed = SEED_QUERIES[seed_name]
    for user in people:
        seed_columns, seed_rows = as_user(conn, user, seed)
        columns, rows = as_user(conn, user, f"select * from public.{view}")
        assert columns == seed_columns + list(extra)
        width = len(seed_columns)
        got = [row[:width] for row in rows]
        if view in ORDERED:
            assert got == seed_rows
        else:
            assert sorted(got, key=repr) == sorted(seed_rows, key=repr)
        # The seed query run by the superuser for this user, independently of any policy.
        independent = conn.execute(seed.replace("auth.uid()", "%(uid)s::uuid"), {"uid": user}).fetchall()
        if view in ORDERED:
            assert got == independent
        else:
            assert sorted(got, key=repr) == sorted(independent, key=repr)


def test_latency_percentiles_are_the_users_own(conn, people):
    for user in people:
        _, rows = as_user(conn, user, "select generator, p50_time_ms, p95_time_ms from public.usage_response_time_by_generator")
        assert {g: (p50, p95) for g, p50, p95 in rows} == own_percentiles(conn, user)
    assert own_percentiles(conn, people[0]) != own_percentiles(conn, people[1])


def test_a_user_without_logs_sees_empty_views(conn, people):
    nobody = people[-1]
    for view in VIEWS:
        _, rows = as_user(conn, nobody, f"select * from public.{view}")
        if view == "usage_cost_this_month":
            assert rows == [(None, 0)]
        else:
            assert rows == []


def test_views_show_no_other_users_rows(conn, people):
    """Recent generations of a user are exactly that user's newest rows, and every user's
    view differs from every other's."""
    answers = {}
    for user in people[:4]:
        _, rows = as_user(conn, user, "select * from public.usage_recent_generations")
        expected = conn.execute(
            """select generator, time_ms, cost, success, created_at from public.generation_logs
                where user_id = %s order by created_at desc limit 50""", [user]).fetchall()
        assert rows == expected
        answers[user] = rows
    assert len({tuple(rows) for rows in answers.values()}) == 4


def test_views_run_as_their_caller_and_keep_anon_out(conn, people):
    for view in VIEWS:
        options = conn.execute(
            "select reloptions from pg_class where oid = %s::regclass", [f"public.{view}"]).fetchone()[0]
        assert "security_invoker=true" in options
        with raises_pg_error("42501"), as_role(conn, "anon") as cur:
            cur.execute(f"select * from public.{view}")


def test_without_a_signed_in_user_the_views_are_empty(conn, people):
    """service_role (no JWT sub) reads the views as nobody: no rows, not everyone's."""
    with as_role(conn, "service_role") as cur:
        assert cur.execute("select * from public.usage_recent_generations").fetchall() == []
        assert cur.execute("select * from public.usage_cost_this_month").fetchall() == [(None, 0)]
