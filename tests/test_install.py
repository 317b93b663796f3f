"""CREATE EXTENSION aurora_telemetry on Supabase and on plain PostgreSQL.

On Supabase, schema auth, auth.users, auth.uid() and the API roles are
already there: the extension uses them as they are. On a plain PostgreSQL
they are missing: the extension brings a compatible stand-in.
"""

import json
import uuid

import pytest

from conftest import (
    API_ROLES, EXTENSION, SUPABASE_PREAMBLE, as_role, log_generation, make_user, scalar,
)

ROLE_ATTRIBUTES = """
    select rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper, rolcreaterole, rolcreatedb
      from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')
     order by rolname
"""

IS_MEMBER = f"""
    select exists (
        select from pg_depend d join pg_extension e on e.oid = d.refobjid
         where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
           and e.extname = '{EXTENSION}' and d.classid = %s::regclass and d.objid = %s::oid)
"""

AUTH_OBJECTS = """
    select 'auth'::regnamespace::oid, 'auth.users'::regclass::oid,
           'auth.uid()'::regprocedure::oid, 'auth.role()'::regprocedure::oid
"""


def is_member(conn, catalog, oid):
    return scalar(conn, IS_MEMBER, [catalog, oid])


def assert_users_see_only_their_own_logs(conn):
    alice, bob = make_user(conn), make_user(conn)
    mine = log_generation(conn, alice, "Claude")
    log_generation(conn, bob, "Midjourney")
    with as_role(conn, "authenticated", sub=alice) as cur:
        assert cur.execute("select id from generation_logs").fetchall() == [(mine,)]


# --- Supabase ---------------------------------------------------------------

def test_on_supabase_the_extension_uses_auth_and_the_roles_as_they_are(cluster):
    with cluster.database("install_supabase", preamble=SUPABASE_PREAMBLE, extension=False) as name, \
            cluster.connect(name) as conn:
        objects_before = conn.execute(AUTH_OBJECTS).fetchone()
        roles_before = conn.execute(ROLE_ATTRIBUTES).fetchall()

        conn.execute(f"create extension {EXTENSION}")

        assert conn.execute(AUTH_OBJECTS).fetchone() == objects_before
        assert conn.execute(ROLE_ATTRIBUTES).fetchall() == roles_before
        schema, users, uid, role = objects_before
        assert not is_member(conn, "pg_namespace", schema)
        assert not is_member(conn, "pg_class", users)
        assert not is_member(conn, "pg_proc", uid)
        assert not is_member(conn, "pg_proc", role)

        to_users = conn.execute("""
            select pg_get_constraintdef(oid) from pg_constraint
             where conrelid = 'public.generation_logs'::regclass and contype = 'f'
               and confrelid = 'auth.users'::regclass""").fetchall()
        assert to_users == [("FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",)]
        assert_users_see_only_their_own_logs(conn)


def test_on_supabase_dropping_the_extension_keeps_the_users(cluster):
    with cluster.database("drop_supabase", preamble=SUPABASE_PREAMBLE) as name, \
            cluster.connect(name) as conn:
        user = make_user(conn)
        log_generation(conn, user, "Claude")

        # The logs go with the extension, so that must be said (see test_drop_guard.py).
        conn.execute(f"drop extension {EXTENSION} cascade")

        assert scalar(conn, "select count(*) from auth.users where id = %s", [user]) == 1
        assert scalar(conn, "select to_regclass('public.generation_logs')") is None
        conn.execute(f"create extension {EXTENSION}")
        assert_users_see_only_their_own_logs(conn)


# --- Plain PostgreSQL ---------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_db(fresh_cluster):
    """A database with the extension in a brand-new cluster: before CREATE
    EXTENSION, none of Supabase's roles exist there."""
    with fresh_cluster.connect() as admin:
        existing = admin.execute(
            "select rolname from pg_roles where rolname = any(%s)", [list(API_ROLES)]).fetchall()
    assert existing == [], "the fresh cluster should have none of the API roles yet"
    with fresh_cluster.database("fresh") as name:
        yield name


def test_on_plain_postgres_the_extension_creates_supabases_roles(fresh_cluster, fresh_db):
    with fresh_cluster.connect(fresh_db) as conn:
        roles = {r[0]: r[1:] for r in conn.execute(ROLE_ATTRIBUTES).fetchall()}
    #                 login, inherit, bypassrls, superuser, createrole, createdb
    assert roles["anon"] == (False, False, False, False, False, False)
    assert roles["authenticated"] == (False, False, False, False, False, False)
    assert roles["service_role"] == (False, False, True, False, False, False)


def test_on_plain_postgres_the_extension_creates_auth_users(fresh_cluster, fresh_db):
    with fresh_cluster.connect(fresh_db) as conn:
        columns = dict(conn.execute("""
            select attname, format_type(atttypid, atttypmod) from pg_attribute
             where attrelid = 'auth.users'::regclass and attnum > 0 and not attisdropped""").fetchall())
        primary_key = conn.execute("""
            select pg_get_constraintdef(oid) from pg_constraint
             where conrelid = 'auth.users'::regclass and contype = 'p'""").fetchall()
        assert (columns["id"], columns["email"]) == ("uuid", "text")
        assert primary_key == [("PRIMARY KEY (id)",)]
        assert_users_see_only_their_own_logs(conn)


def test_stand_in_auth_uid_and_role_read_the_jwt_like_supabase(fresh_cluster, fresh_db):
    """All on one connection, as PostgREST reuses connections: a setting made
    local to a committed transaction reads '' afterwards, which means NULL."""
    alice, bob = uuid.uuid4(), uuid.uuid4()

    def who(cur):
        return cur.execute("select auth.uid(), auth.role()").fetchone()

    with fresh_cluster.connect(fresh_db) as conn:
        assert scalar(conn, "select current_setting('request.jwt.claims', true)") is None
        assert who(conn) == (None, None)

        with as_role(conn, "authenticated", sub=alice) as cur:
            assert who(cur) == (alice, "authenticated")

        assert scalar(conn, "select current_setting('request.jwt.claims', true)") == ""
        assert who(conn) == (None, None)

        # The older per-claim settings come first, as in Supabase.
        with as_role(conn, "authenticated", sub=alice) as cur:
            cur.execute("select set_config('request.jwt.claim.sub', %s, true)", [str(bob)])
            cur.execute("select set_config('request.jwt.claim.role', 'service_role', true)")
            assert who(cur) == (bob, "service_role")

        assert scalar(conn, "select current_setting('request.jwt.claim.sub', true)") == ""
        with as_role(conn, "anon", claims=json.dumps({"role": "anon"})) as cur:
            assert who(cur) == (None, "anon")


def test_a_second_database_in_the_same_cluster_reuses_the_roles(fresh_cluster, fresh_db):
    """The roles are cluster-wide and now exist; schema auth does not, in a new database."""
    with fresh_cluster.connect() as admin:
        roles_before = admin.execute(ROLE_ATTRIBUTES).fetchall()
    with fresh_cluster.database("fresh_second") as name, fresh_cluster.connect(name) as conn:
        assert conn.execute(ROLE_ATTRIBUTES).fetchall() == roles_before
        assert_users_see_only_their_own_logs(conn)


def test_on_plain_postgres_the_extension_can_be_dropped_and_created_again(fresh_cluster):
    with fresh_cluster.database("fresh_recreate") as name, fresh_cluster.connect(name) as conn:
        conn.execute(f"drop extension {EXTENSION}")
        conn.execute(f"create extension {EXTENSION}")
        assert_users_see_only_their_own_logs(conn)
