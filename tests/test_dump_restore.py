"""pg_dump -Fc, then pg_restore into a new database: the logs, the users, the
extension's own data and the row-level security all come back as they were."""

from decimal import Decimal

from psycopg import sql

from conftest import (
    DERIVED_TABLES, EXTENSION, SUPABASE_PREAMBLE, as_role, log_generation, make_user,
    raises_pg_error,
)

# Rebuilt tables compared otherwise (slotted counters) or not at all (caches, and the
# staging table, which is empty outside a transaction).
PER_BACKEND_OR_CACHED = {
    "aurora_telemetry.generator_hourly", "aurora_telemetry.generator_baselines",
    "aurora_telemetry.user_baselines", "aurora_telemetry.pending_usage_deltas",
}

SNAPSHOT_QUERIES = {
    "logs": """select id, user_id, generator, time_ms, cost, prompt_length, success,
                      error_message, metadata, created_at
                 from public.generation_logs order by id""",
    "users": "select id, email from auth.users order by id",
    "policies": """select policyname, permissive, roles, cmd, qual, with_check from pg_policies
                    where schemaname = 'public' and tablename = 'generation_logs' order by policyname""",
    "row level security": """select relrowsecurity, relforcerowsecurity from pg_class
                              where oid = 'public.generation_logs'::regclass""",
    "extension": f"select extversion from pg_extension where extname = '{EXTENSION}'",
}


def snapshot(conn):
    """Everything that must survive: the queries above, the rows of every table
    the extension asks pg_dump to keep (pg_extension.extconfig, filtered by its
    extcondition) and the tables it rebuilds from the logs instead."""
    state = {name: conn.execute(query).fetchall() for name, query in SNAPSHOT_QUERIES.items()}
    kept = conn.execute(f"""
        select t.oid::regclass::text, t.condition
          from pg_extension e,
               unnest(e.extconfig, e.extcondition) as t(oid, condition)
         where e.extname = '{EXTENSION}'""").fetchall()
    kept += [(table, "") for table in sorted(DERIVED_TABLES - PER_BACKEND_OR_CACHED)
             if conn.execute("select to_regclass(%s)", [table]).fetchone()[0]]
    # Per-generator counters are spread over slots chosen by backend: compare their sums.
    state["generator_hourly"] = conn.execute(
        """select generator, hour_start, sum(generations), sum(failed), sum(total_time_ms)
             from aurora_telemetry.generator_hourly group by 1, 2 order by 1, 2""").fetchall()
    for table, condition in kept:
        if conn.execute("select relkind from pg_class where oid = %s::regclass", [table]).fetchone()[0] == "S":
            state[table] = conn.execute(sql.SQL("select last_value, is_called from {}").format(sql.SQL(table))).fetchall()
            continue
        state[table] = conn.execute(sql.SQL("select t::text from {} as t {} order by 1").format(
            sql.SQL(table), sql.SQL(condition or ""))).fetchall()
    return state


def test_dump_and_restore_keeps_the_logs_and_their_protection(db, conn, tmp_path):
    alice, bob = make_user(conn), make_user(conn)
    alices = {
        log_generation(conn, alice, "Claude", 1480, cost=Decimal("0.015"), prompt_length=120,
                       metadata={"vibe": "serene", "steps": [1, 2, {"cleaned": True}]}),
        log_generation(conn, alice, "Imagen-3", 2650, success=False,
                       error_message="API rate limit exceeded"),
    }
    log_generation(conn, bob, "Midjourney", 5200, cost=Decimal("0.06"),
                   metadata={"resolution": "1024x1024"})
    # What administrators configure, and an alert sent: all of it must come back.
    conn.execute("insert into aurora_telemetry.generators (name, description) values ('Veo-2', 'video')")
    conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                    values ('Veo-2', '2026-01-01', 0.5), ('Claude', '2026-06-01', 0.02)""")
    conn.execute("""insert into aurora_telemetry.settings (name, value)
                    values ('daily_cost_threshold', '25'), ('cost_alert_levels', '[1, 2]')""")
    conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit, hard_limit) values (%s, 0.10, true)",
                 [bob])
    log_generation(conn, bob, "Veo-2", 100)  # $0.06 + $0.50 crosses $0.10: a cost_alert
    before = snapshot(conn)
    assert len(before["logs"]) >= 4
    assert len(before["aurora_telemetry.alerts"]) == 2  # levels 1 and 2 of $0.10
    assert len(before["aurora_telemetry.budgets"]) == 1

    dump = tmp_path / "aurora.dump"
    if db.flavor == "supabase":
        # Supabase manages schema auth itself: a project is restored into a database whose
        # auth schema (and users) the platform has already put back, from a dump without it.
        db.cluster.pg_tool("pg_dump", "-Fc", "--exclude-schema=auth", "-d", db.name, "-f", str(dump))
        target = db.cluster.database("restored", preamble=SUPABASE_PREAMBLE, extension=False,
                                     template="template0")
    else:
        db.cluster.pg_tool("pg_dump", "-Fc", "-d", db.name, "-f", str(dump))
        target = db.cluster.database("restored", extension=False, template="template0")
    users = conn.execute("select id, email from auth.users").fetchall()
    with target as restored, db.cluster.connect(restored) as copy:
        if db.flavor == "supabase":
            with copy.cursor() as cur:
                cur.executemany("insert into auth.users (id, email) values (%s, %s)", users)
        db.cluster.pg_tool("pg_restore", "--exit-on-error", "-d", restored, str(dump))

        after = snapshot(copy)
        assert after.keys() == before.keys()
        for key in before:
            assert (key, after[key]) == (key, before[key])
        with as_role(copy, "authenticated", sub=alice) as cur:
            assert {r[0] for r in cur.execute("select id from generation_logs")} == alices
        with raises_pg_error("22023"):
            log_generation(copy, bob, "GPT-9")
        log_generation(copy, bob, "Claude")
