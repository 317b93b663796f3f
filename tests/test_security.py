"""Attacks: malformed JWT claims, search_path hijacking, objects planted before install, and
the hygiene of every function the extension installs."""

import json
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from conftest import EXTENSION, as_role, make_user, raises_pg_error, scalar

MALFORMED_CLAIMS = {
    "empty": ("", None),                                   # '' counts as no claims: no user
    "no sub": ("{}", None),
    "null sub": ('{"sub": null}', None),
    "not json": ("not json", "22P02"),
    "sub not a uuid": ('{"sub": "42"}', "22P02"),
    "sub an object": ('{"sub": {"id": 1}}', "22P02"),
}


@pytest.fixture
def someone_with_data(conn):
    user = make_user(conn)
    with as_role(conn, "service_role") as cur:
        cur.execute("select log_generation(%s, 'Claude', 100)", [user])
    return user


@pytest.mark.parametrize("case", MALFORMED_CLAIMS)
def test_malformed_claims_read_nothing_and_fail_clearly(conn, someone_with_data, case):
    claims, error = MALFORMED_CLAIMS[case]
    if error:
        with raises_pg_error(error):
            with as_role(conn, "authenticated", claims=claims) as cur:
                cur.execute("select count(*) from generation_logs")
        with raises_pg_error(error):
            with as_role(conn, "authenticated", claims=claims) as cur:
                cur.execute("select * from get_user_usage_stats()")
    else:
        with as_role(conn, "authenticated", claims=claims) as cur:
            assert scalar(cur, "select count(*) from generation_logs") == 0
            assert scalar(cur, "select count(*) from usage_alerts") == 0
        with raises_pg_error("22004", "user_id must not be NULL"):
            with as_role(conn, "authenticated", claims=claims) as cur:
                cur.execute("select * from get_user_usage_stats()")
        with raises_pg_error("42501", "only their own usage"):
            with as_role(conn, "authenticated", claims=claims) as cur:
                cur.execute("select * from get_user_usage_stats(%s)", [someone_with_data])
    assert scalar(conn, "select 1") == 1  # the connection and backend are fine


def test_claims_committed_earlier_on_the_connection_do_not_leak(conn, someone_with_data):
    with as_role(conn, "authenticated", sub=someone_with_data) as cur:
        assert scalar(cur, "select count(*) from generation_logs") == 1
    # The next request on the same connection sets no claims: the committed SET LOCAL left ''.
    with conn.transaction():
        conn.execute("set local role authenticated")
        assert scalar(conn, "select current_setting('request.jwt.claims', true)") == ""
        assert scalar(conn, "select count(*) from generation_logs") == 0
        assert scalar(conn, "select auth.uid()") is None


def test_a_hijacked_search_path_changes_nothing_the_extension_computes(db, conn):
    """An ordinary role plants look-alikes of what the extension calls; the application's
    session then puts that schema first. Costs, rollups and statistics stay exact."""
    conn.execute("drop role if exists mallory")
    conn.execute("create role mallory nologin")
    conn.execute("create schema trap authorization mallory")
    with conn.transaction():
        conn.execute("set local role mallory")
        conn.execute("""create function trap.now() returns timestamptz language sql as $$ select '2000-01-01'::timestamptz $$""")
        conn.execute("""create function trap.date_trunc(text, timestamptz, text) returns timestamptz
                        language sql as $$ select '2000-01-01'::timestamptz $$""")
        conn.execute("""create function trap.jsonb_typeof(jsonb) returns text language sql as $$ select 'number' $$""")
        conn.execute("""create function trap.always(uuid, uuid) returns boolean language sql as $$ select true $$""")
        conn.execute("create operator trap.= (leftarg = uuid, rightarg = uuid, function = trap.always)")
        conn.execute("""create function trap.sum(numeric) returns numeric language sql as $$ select 1000::numeric $$""")
    conn.execute("grant usage on schema trap to public")
    user, other = make_user(conn), make_user(conn)
    with conn.transaction():
        conn.execute("set local search_path = trap, public, pg_catalog")
        conn.execute("set local role service_role")
        conn.execute("select public.log_generation(%s, 'Imagen-3', 1500)", [user])
        conn.execute("select public.log_generation(%s, 'Claude', 900)", [other])
        conn.execute("insert into public.generation_logs (user_id, generator, time_ms) values (%s, 'Midjourney', 300)", [user])
    row = conn.execute("""select count(*), sum(cost), min(created_at) > now() - interval '1 hour'
                            from public.generation_logs where user_id = %s""", [user]).fetchone()
    assert row == (2, Decimal("0.100000"), True)
    with conn.transaction():
        conn.execute("set local search_path = trap, public, pg_catalog")
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": str(user)})])
        stats = conn.execute("select total_generations, total_cost from public.get_user_usage_stats()").fetchone()
        visible = conn.execute("select count(*) from public.generation_logs").fetchone()
    assert stats == (2, Decimal("0.1"))
    assert visible == (2,)  # the planted = operator did not open other users' rows
    conn.execute("drop schema trap cascade")
    conn.execute("drop owned by mallory")
    conn.execute("drop role mallory")


@pytest.mark.parametrize("plant", [
    "create table public.generation_logs (id uuid)",
    "create function public.calculate_cost(generator text, time_ms integer) returns numeric language sql as $$ select 0::numeric $$",
    "create view public.usage_alerts as select 1 as id",
    "create schema aurora_telemetry",
])
def test_objects_planted_before_install_make_create_extension_fail(cluster, plant):
    with cluster.database("planted", extension=False) as name, cluster.connect(name) as conn:
        conn.execute("drop role if exists planter")
        conn.execute("create role planter nologin")
        conn.execute(sql.SQL("grant create on database {} to planter").format(sql.Identifier(name)))
        conn.execute("grant create on schema public to planter")
        with conn.transaction():
            conn.execute("set local role planter")
            conn.execute(plant)
        with pytest.raises(psycopg.Error):
            conn.execute(sql.SQL("create extension {}").format(sql.Identifier(EXTENSION)))
        assert scalar(conn, "select count(*) from pg_extension where extname = %s", [EXTENSION]) == 0
        conn.execute("drop owned by planter")
        conn.execute("drop role planter")


def test_every_function_has_a_fixed_search_path_and_no_definer_is_open(conn):
    rows = conn.execute(f"""
        select p.oid::regprocedure::text, p.prosecdef, p.prokind, p.prorettype = 'trigger'::regtype,
               coalesce(array_to_string(p.proconfig, ','), ''),
               has_function_privilege('anon', p.oid, 'EXECUTE'),
               coalesce(p.proacl::text, '') ~ '(^|[{{,])=X'
          from pg_proc p
          join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
          join pg_extension e on e.oid = d.refobjid and e.extname = '{EXTENSION}'""").fetchall()
    assert rows, "the extension installs functions"
    for name, definer, kind, is_trigger, config, anon_executes, public_executes in rows:
        if kind != "a":  # aggregates cannot carry settings; their support functions do
            assert "search_path=" in config, name
        if name.startswith("auth."):
            continue  # the plain-PostgreSQL stand-in for Supabase's auth.uid() and friends
        assert not anon_executes, name
        assert not public_executes, name
        if definer:
            # Privileged code runs only as triggers (not callable directly) or as the
            # administrators' check, which takes no input.
            assert is_trigger or name == "aurora_telemetry.caller_is_admin()", name
