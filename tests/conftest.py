"""Fixtures and helpers for the client-level tests.

The tests talk to a real PostgreSQL 15 cluster (the one `scripts/cluster`
runs; `scripts/test` starts it and exports PGHOST/PGPORT) over real
connections, and act as PostgREST does: each request is one transaction that
switches role with `SET LOCAL ROLE` and puts the JWT claims in the
transaction-local setting `request.jwt.claims` (see `as_role`).
"""

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUPABASE_PREAMBLE = FIXTURES / "supabase_auth.sql"
PGBIN = Path("/usr/lib/postgresql/15/bin")

RUN_DIR = Path(
    os.environ.get("AURORA_RUN_DIR")
    or Path(os.environ.get("TMPDIR") or "/tmp") / "aurora_telemetry"
)
PGHOST = os.environ.get("PGHOST") or str(RUN_DIR)
PGPORT = int(os.environ.get("PGPORT") or os.environ.get("AURORA_PGPORT") or 55415)

EXTENSION = "aurora_telemetry"
KNOWN_GENERATORS = ("Claude", "Imagen-3", "Midjourney")
API_ROLES = ("anon", "authenticated", "service_role")
TEST_DB_PREFIX = "aurora_t_"
# Extension tables that pg_dump may leave out: restoring generation_logs
# rebuilds them (test_dump_restore.py checks that it does), or they are empty
# outside a transaction.
DERIVED_TABLES = {
    "aurora_telemetry.usage_rollups", "aurora_telemetry.pending_usage_deltas",
    "aurora_telemetry.spend_totals", "aurora_telemetry.generator_hourly",
    "aurora_telemetry.generator_baselines", "aurora_telemetry.user_baselines",
}


# --------------------------------------------------------------------------
# Clusters and databases
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Cluster:
    """A running cluster, reached as the superuser `postgres` (trust auth)."""

    host: str
    port: int

    def connect(self, dbname="postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=dbname,
            autocommit=True, **kwargs,
        )

    def pg_tool(self, tool, *args):
        """Run a PostgreSQL client program (pg_dump, pg_restore, ...) against this cluster."""
        cmd = [str(PGBIN / tool), "-h", self.host, "-p", str(self.port), "-U", "postgres", *args]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr}"
        return result

    @contextlib.contextmanager
    def database(self, label, preamble=None, extension=True, template="template1"):
        """A new database with a unique name, dropped afterwards.

        `preamble`: an SQL file run first (e.g. the Supabase one);
        `extension`: whether to run CREATE EXTENSION aurora_telemetry.
        """
        name = f"{TEST_DB_PREFIX}{label}_{uuid.uuid4().hex[:8]}"
        with self.connect() as admin:
            admin.execute(sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        try:
            with self.connect(name) as conn:
                if preamble is not None:
                    conn.execute(Path(preamble).read_text())
                if extension:
                    conn.execute(sql.SQL("create extension {}").format(sql.Identifier(EXTENSION)))
            yield name
        finally:
            with self.connect() as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(name)))


@pytest.fixture(scope="session")
def cluster():
    """The cluster of scripts/cluster (roles there may already exist)."""
    c = Cluster(PGHOST, PGPORT)
    with c.connect() as admin:
        # Databases left behind by an interrupted run.
        stale = admin.execute(
            "select datname from pg_database where datname like %s", [TEST_DB_PREFIX + "%"]
        ).fetchall()
        for (name,) in stale:
            admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
    return c


@pytest.fixture(scope="session")
def fresh_cluster():
    """A throwaway cluster of its own (initdb'd now, next port), in which the
    Supabase roles do not exist until the extension creates them."""
    env = {**os.environ,
           "AURORA_RUN_DIR": str(RUN_DIR / "fresh-cluster"),
           "AURORA_PGPORT": str(PGPORT + 1)}
    script = str(REPO / "scripts" / "cluster")

    def cluster_cmd(action):
        return subprocess.run([script, action], env=env, capture_output=True, text=True)

    cluster_cmd("stop")  # left over from an interrupted run
    shutil.rmtree(env["AURORA_RUN_DIR"], ignore_errors=True)
    started = cluster_cmd("start")
    assert started.returncode == 0, f"fresh cluster did not start:\n{started.stderr}"
    try:
        yield Cluster(env["AURORA_RUN_DIR"], PGPORT + 1)
    finally:
        cluster_cmd("stop")
        shutil.rmtree(env["AURORA_RUN_DIR"], ignore_errors=True)


@dataclass(frozen=True)
class Database:
    cluster: Cluster
    name: str
    flavor: str  # "supabase": Supabase preamble first; "plain": extension alone

    def connect(self, **kwargs) -> psycopg.Connection:
        return self.cluster.connect(self.name, **kwargs)


@pytest.fixture(scope="module", params=["supabase", "plain"])
def db(request, cluster):
    """A database with the extension installed, one per test module and flavor:
    `supabase` has the Supabase preamble (roles, auth schema, default
    privileges) before CREATE EXTENSION; `plain` has nothing before it."""
    flavor = request.param
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:24] + "_" + flavor
    preamble = SUPABASE_PREAMBLE if flavor == "supabase" else None
    with cluster.database(label, preamble=preamble) as name:
        yield Database(cluster, name, flavor)


@pytest.fixture
def conn(db):
    """A superuser connection (autocommit) to the module's database."""
    with db.connect() as c:
        yield c


# --------------------------------------------------------------------------
# Acting as PostgREST
# --------------------------------------------------------------------------

@contextlib.contextmanager
def as_role(conn, role, sub=None, claims=None):
    """One PostgREST-style request: BEGIN; SET LOCAL ROLE <role>;
    set_config('request.jwt.claims', <claims>, true); ... COMMIT.

    Yields a cursor. Claims default to {"role": role} plus {"sub": sub} when
    given; `claims` (a dict or a raw string) replaces them. An exception
    inside the block rolls the transaction back and propagates.
    """
    if claims is None:
        claims = {"role": role}
        if sub is not None:
            claims["sub"] = str(sub)
    if not isinstance(claims, str):
        claims = json.dumps(claims)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        cur.execute("select set_config('request.jwt.claims', %s, true)", [claims])
        yield cur


def scalar(conn_or_cur, query, params=None):
    """The single value of a one-row, one-column query."""
    rows = conn_or_cur.execute(query, params).fetchall()
    assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value, got {rows!r}"
    return rows[0][0]


def make_user(conn, email=None):
    """A new row in auth.users (as the superuser, as Supabase Auth would); returns its id."""
    user_id = uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email) values (%s, %s)",
        [user_id, email or f"user-{user_id.hex[:8]}@example.com"],
    )
    return user_id


def log_generation(conn, user_id, generator="Claude", time_ms=1000, **columns):
    """Insert one generation log as service_role (the backend's way); returns its id."""
    values = {"user_id": user_id, "generator": generator, "time_ms": time_ms, **columns}
    if isinstance(values.get("metadata"), (dict, list)):
        values["metadata"] = Jsonb(values["metadata"])
    query = sql.SQL("insert into public.generation_logs ({}) values ({}) returning id").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    with as_role(conn, "service_role") as cur:
        return scalar(cur, query, list(values.values()))


def user_log_ids(conn, user_id):
    """Ids of a user's logs, read as the superuser (no row-level security)."""
    rows = conn.execute(
        "select id from public.generation_logs where user_id = %s", [user_id]
    ).fetchall()
    return {r[0] for r in rows}


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

def error_text(err):
    """Primary message, detail and hint of a server error, one per line."""
    diag = err.diag
    return "\n".join(p for p in (diag.message_primary, diag.message_detail, diag.message_hint) if p)


@contextlib.contextmanager
def raises_pg_error(sqlstate, *fragments):
    """Expect the block to fail with SQLSTATE `sqlstate`, and each of `fragments`
    in the error's message, detail or hint."""
    with pytest.raises(psycopg.Error) as excinfo:
        yield excinfo
    err = excinfo.value
    text = error_text(err) or str(err)
    assert err.sqlstate == sqlstate, f"expected SQLSTATE {sqlstate}, got {err.sqlstate}: {text}"
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in error:\n{text}"
