"""Who can see and change generation logs, asked the way PostgREST asks.

Each `as_role(...)` block is one API request: anon (no JWT), authenticated
(a user's JWT, `sub` = the user's id) or service_role (the backend's key).
"""

import json

import pytest

from conftest import (
    KNOWN_GENERATORS, as_role, log_generation, make_user, raises_pg_error, scalar, user_log_ids,
)

# What a forbidden request meets. The extension grants anon nothing and
# authenticated nothing but SELECT, so forbidden requests are refused outright
# (insufficient_privilege), never silently filtered to zero rows.
DENIED = "42501"

SELECT_POLICY = "Users can view own generation logs"
INSERT_POLICY = "Service role can insert generation logs"


@pytest.fixture
def alice_and_bob(conn):
    """Two users, Alice with one log per generator, Bob with one log."""
    alice, bob = make_user(conn), make_user(conn)
    for generator in KNOWN_GENERATORS:
        log_generation(conn, alice, generator)
    log_generation(conn, bob, "Claude")
    return alice, bob


def visible_ids(conn, role, sub=None, claims=None):
    with as_role(conn, role, sub=sub, claims=claims) as cur:
        return {row[0] for row in cur.execute("select id from generation_logs").fetchall()}


def test_a_user_sees_exactly_their_own_logs(conn, alice_and_bob):
    alice, bob = alice_and_bob
    assert visible_ids(conn, "authenticated", sub=alice) == user_log_ids(conn, alice)
    assert visible_ids(conn, "authenticated", sub=bob) == user_log_ids(conn, bob)
    assert len(user_log_ids(conn, alice)) == len(KNOWN_GENERATORS)


def test_a_user_cannot_read_another_users_logs_even_by_asking_for_them(conn, alice_and_bob):
    alice, bob = alice_and_bob
    bobs_ids = list(user_log_ids(conn, bob))
    with as_role(conn, "authenticated", sub=alice) as cur:
        assert scalar(cur, "select count(*) from generation_logs where user_id = %s", [bob]) == 0
        assert scalar(cur, "select count(*) from generation_logs where id = any(%s)", [bobs_ids]) == 0


def test_a_jwt_without_sub_sees_nothing(conn, alice_and_bob):
    assert visible_ids(conn, "authenticated", claims={"role": "authenticated"}) == set()


def test_the_older_request_jwt_claim_sub_setting_identifies_the_user_too(conn, alice_and_bob):
    alice, _ = alice_and_bob
    with as_role(conn, "authenticated", claims={"role": "authenticated"}) as cur:
        cur.execute("select set_config('request.jwt.claim.sub', %s, true)", [str(alice)])
        seen = {row[0] for row in cur.execute("select id from generation_logs").fetchall()}
    assert seen == user_log_ids(conn, alice)


def test_anon_reads_nothing(conn, alice_and_bob):
    with raises_pg_error(DENIED, "permission denied"):
        with as_role(conn, "anon") as cur:
            cur.execute("select * from generation_logs")


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_clients_cannot_insert_logs_not_even_their_own(conn, role):
    user = make_user(conn)
    with raises_pg_error(DENIED):
        with as_role(conn, role, sub=user) as cur:
            cur.execute(
                "insert into generation_logs (user_id, generator, time_ms) values (%s, 'Claude', 10)",
                [user])
    assert user_log_ids(conn, user) == set()


def row_snapshot(conn, user):
    return conn.execute(
        "select * from public.generation_logs where user_id = %s order by id", [user]
    ).fetchall()


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("statement", [
    "update generation_logs set time_ms = 1, success = false where user_id = %s",
    "delete from generation_logs where user_id = %s",
])
def test_clients_cannot_update_or_delete_logs_not_even_their_own(conn, alice_and_bob, role, statement):
    alice, _ = alice_and_bob
    before = row_snapshot(conn, alice)
    with raises_pg_error(DENIED):
        with as_role(conn, role, sub=alice) as cur:
            cur.execute(statement, [alice])
    assert row_snapshot(conn, alice) == before


def test_service_role_inserts_logs_and_reads_them_back(conn):
    alice, bob = make_user(conn), make_user(conn)
    new_id = log_generation(
        conn, alice, "Imagen-3", 2500, prompt_length=120, success=False,
        error_message="API rate limit exceeded", metadata={"vibe": "serene"})
    log_generation(conn, bob, "Midjourney", 5000)

    with as_role(conn, "service_role") as cur:
        row = cur.execute(
            "select user_id, generator, time_ms, prompt_length, success, error_message, metadata"
            " from generation_logs where id = %s", [new_id]).fetchone()
        seen_by_service = scalar(cur, "select count(*) from generation_logs")
    assert row == (alice, "Imagen-3", 2500, 120, False, "API rate limit exceeded", {"vibe": "serene"})
    # The backend sees every user's logs.
    assert seen_by_service == scalar(conn, "select count(*) from public.generation_logs")


def test_row_level_security_is_enabled(conn):
    assert scalar(conn, "select relrowsecurity from pg_class where oid = 'public.generation_logs'::regclass")


def test_pg_policies_shows_the_seeds_policies(conn):
    """The seed's troubleshooting query, verbatim."""
    cur = conn.execute("SELECT * FROM pg_policies WHERE tablename = 'generation_logs';")
    columns = [c.name for c in cur.description]
    policies = {row["policyname"]: row for row in (dict(zip(columns, r)) for r in cur.fetchall())}

    assert {SELECT_POLICY, INSERT_POLICY} <= set(policies)
    select_policy, insert_policy = policies[SELECT_POLICY], policies[INSERT_POLICY]
    assert (select_policy["schemaname"], select_policy["cmd"], select_policy["roles"]) == (
        "public", "SELECT", ["authenticated"])
    # Evaluated once per query, not once per row (Supabase's performance advice).
    assert "( SELECT auth.uid()" in select_policy["qual"]
    assert "user_id" in select_policy["qual"]
    assert (insert_policy["schemaname"], insert_policy["cmd"], insert_policy["roles"]) == (
        "public", "INSERT", ["service_role"])

    for policy in policies.values():
        # Nothing for anon or everyone, and no way for clients to change logs.
        assert not {"anon", "public"} & set(policy["roles"]), policy
        if "authenticated" in policy["roles"]:
            assert policy["cmd"] == "SELECT", policy


def test_request_settings_do_not_leak_into_the_next_request(conn, alice_and_bob):
    """A request's claims are transaction-local: the next one on the same
    connection (PostgREST reuses connections) starts with none."""
    alice, _ = alice_and_bob
    assert visible_ids(conn, "authenticated", sub=alice)
    with as_role(conn, "authenticated", claims=json.dumps({"role": "authenticated"})) as cur:
        assert cur.execute("select id from generation_logs").fetchall() == []
