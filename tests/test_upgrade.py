"""Upgrades: an install of the first release (0.1.0) with data in it, updated with
ALTER EXTENSION ... UPDATE, equals a fresh install of the current version, data kept."""

from decimal import Decimal

import pytest
from psycopg import sql

from conftest import EXTENSION, SUPABASE_PREAMBLE, as_role, make_user, scalar

FIRST_RELEASE = "0.1.0"

# The shape of an installed extension: every member object, and how each is defined,
# protected and wired. Two installs with equal snapshots behave the same.
SHAPE_QUERIES = {
    "members": f"""
        select pg_describe_object(d.classid, d.objid, 0)
          from pg_depend d join pg_extension e on e.oid = d.refobjid
         where e.extname = '{EXTENSION}' and d.deptype = 'e' order by 1""",
    "functions": f"""
        select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef, p.proconfig, p.proacl::text
          from pg_proc p join pg_depend d on d.objid = p.oid and d.classid = 'pg_proc'::regclass and d.deptype = 'e'
          join pg_extension e on e.oid = d.refobjid and e.extname = '{EXTENSION}'
         where p.prokind <> 'a' order by 1""",
    "relations": f"""
        select c.oid::regclass::text, c.relkind, c.relacl::text, c.relrowsecurity, c.relforcerowsecurity,
               (select array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                                 || a.attnotnull || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
                                 order by a.attnum)
                  from pg_attribute a left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
                 where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped)
          from pg_class c join pg_depend d on d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype = 'e'
          join pg_extension e on e.oid = d.refobjid and e.extname = '{EXTENSION}' order by 1""",
    "constraints": """
        select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
         where connamespace in ('public'::regnamespace, 'aurora_telemetry'::regnamespace) order by 1, 2""",
    "indexes": """
        select schemaname, indexname, indexdef from pg_indexes
         where schemaname in ('public', 'aurora_telemetry') order by 1, 2""",
    "triggers": """
        select tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) from pg_trigger
         where not tgisinternal order by 1, 2""",
    "policies": """
        select schemaname, tablename, policyname, permissive, roles, cmd, qual, with_check from pg_policies
         where schemaname in ('public', 'aurora_telemetry') order by 1, 2, 3""",
    "dumped tables": f"""
        select t.oid::regclass::text, t.condition
          from pg_extension e, unnest(e.extconfig, e.extcondition) as t(oid, condition)
         where e.extname = '{EXTENSION}' order by 1""",
    "version": f"select extversion from pg_extension where extname = '{EXTENSION}'",
}


def shape(conn):
    return {name: conn.execute(query).fetchall() for name, query in SHAPE_QUERIES.items()}


@pytest.mark.parametrize("flavor", ["supabase", "plain"])
def test_updating_the_first_release_equals_a_fresh_install(cluster, flavor):
    preamble = SUPABASE_PREAMBLE if flavor == "supabase" else None
    with cluster.database("old", preamble=preamble, extension=False) as old, \
            cluster.database("new", preamble=preamble) as new, \
            cluster.connect(old) as conn, cluster.connect(new) as fresh:
        conn.execute(sql.SQL("create extension {} version {}").format(
            sql.Identifier(EXTENSION), sql.Literal(FIRST_RELEASE)))
        assert scalar(conn, f"select extversion from pg_extension where extname = '{EXTENSION}'") == FIRST_RELEASE

        # Data logged under the first release.
        user = make_user(conn)
        conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit) values (%s, 5)", [user])
        with as_role(conn, "service_role") as cur:
            for generator in ("Claude", "Imagen-3", "Midjourney"):
                cur.execute("select log_generation(%s, %s, 1000)", [user, generator])

        conn.execute(sql.SQL("alter extension {} update").format(sql.Identifier(EXTENSION)))

        assert shape(conn) == shape(fresh)
        assert scalar(conn, "select count(*) from generation_logs where user_id = %s", [user]) == 3
        stats = conn.execute("select total_generations, total_cost from get_user_usage_stats(%s)", [user]).fetchone()
        assert stats == (3, Decimal("0.115"))
        # What the update added works: a price change reaches the pricing at once.
        conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                        values ('Claude', now() - interval '1 second', 0.5)""")
        assert scalar(conn, "select calculate_cost('Claude', 1)") == Decimal("0.5")
