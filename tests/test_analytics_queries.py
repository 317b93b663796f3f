"""The seed's four "Analytics Queries", verbatim, run by a signed-in user.

Each must answer about that user only. The expected answer is computed by the
superuser (no row-level security) with the user's id written in place of
auth.uid(), and the data is such that any other user's rows would change it.
"""

from decimal import Decimal

import pytest

from conftest import KNOWN_GENERATORS, as_role, log_generation, make_user

CENT = Decimal("0.01")

# Copied verbatim from the seed document, section "Analytics Queries".
SEED_QUERIES = {
    "recent generations": """
SELECT 
  generator,
  time_ms,
  cost,
  success,
  created_at
FROM generation_logs
WHERE user_id = auth.uid()
ORDER BY created_at DESC
LIMIT 50;
""",
    "total cost this month": """
SELECT 
  SUM(cost) as total_cost,
  COUNT(*) as total_generations
FROM generation_logs
WHERE user_id = auth.uid()
  AND created_at >= DATE_TRUNC('month', NOW());
""",
    "success rate by generator": """
SELECT 
  generator,
  COUNT(*) as total,
  SUM(CASE WHEN success THEN 1 ELSE 0 END) as successful,
  ROUND(100.0 * SUM(CASE WHEN success THEN 1 ELSE 0 END) / COUNT(*), 2) as success_rate
FROM generation_logs
WHERE user_id = auth.uid()
GROUP BY generator;
""",
    "average response time": """
SELECT 
  generator,
  AVG(time_ms) as avg_time_ms,
  MIN(time_ms) as min_time_ms,
  MAX(time_ms) as max_time_ms
FROM generation_logs
WHERE user_id = auth.uid()
  AND success = TRUE
GROUP BY generator;
""",
}


@pytest.fixture(scope="module")
def users(db):
    """Alice and Bob with logs of every generator, successes and failures,
    this month and (backdated by the superuser) 40 days ago; Bob's differ in
    every respect the queries measure."""
    with db.connect() as conn:
        alice, bob = make_user(conn), make_user(conn)
        for user, scale in ((alice, 1), (bob, 7)):
            for i, generator in enumerate(KNOWN_GENERATORS):
                log_generation(conn, user, generator, 1000 * scale + i, cost=CENT * scale)
                log_generation(conn, user, generator, 3000 * scale + i, cost=2 * CENT * scale,
                               success=False, error_message="timeout")
                conn.execute(
                    """insert into public.generation_logs (user_id, generator, time_ms, cost, created_at)
                       values (%s, %s, %s, %s, now() - interval '40 days')""",
                    [user, generator, 500 * scale + i, 5 * CENT * scale])
        for generator in KNOWN_GENERATORS:
            log_generation(conn, bob, generator, 9999, success=False, error_message="quota")
    return alice, bob


def as_user(conn, user, query):
    with as_role(conn, "authenticated", sub=user) as cur:
        return cur.execute(query).fetchall()


def independently(conn, user, query):
    return conn.execute(query.replace("auth.uid()", "%(uid)s::uuid"), {"uid": user}).fetchall()


@pytest.mark.parametrize("name", list(SEED_QUERIES))
def test_seed_query_answers_for_the_signed_in_user_only(conn, users, name):
    query = SEED_QUERIES[name]
    alice, bob = users
    for user in (alice, bob):
        expected = independently(conn, user, query)
        assert expected, "test data should give every query rows"
        assert sorted(as_user(conn, user, query), key=repr) == sorted(expected, key=repr)
    assert independently(conn, alice, query) != independently(conn, bob, query)


def test_recent_generations_are_newest_first(conn, users):
    alice, _ = users
    rows = as_user(conn, alice, SEED_QUERIES["recent generations"])
    created = [row[-1] for row in rows]
    assert len(rows) == 3 * len(KNOWN_GENERATORS)
    assert created == sorted(created, reverse=True)


def test_this_months_total_leaves_out_older_logs(conn, users):
    alice, _ = users
    [(total_cost, total_generations)] = as_user(conn, alice, SEED_QUERIES["total cost this month"])
    assert total_generations == 2 * len(KNOWN_GENERATORS)
    expected_cost = conn.execute(
        "select sum(cost) from public.generation_logs"
        " where user_id = %s and created_at >= date_trunc('month', now())", [alice]).fetchone()[0]
    assert total_cost == expected_cost
