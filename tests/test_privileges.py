"""What the extension's objects let API clients do: only what is meant.

The `supabase` flavor of the database has Supabase's default privileges on
schema public (everything postgres creates there is granted to anon and
authenticated), so these checks also show that the extension's script undoes
them. The lists below are the whole intended surface: anything else is a leak.
"""

import pytest

from conftest import DERIVED_TABLES, EXTENSION

# Privileges that anon, authenticated and PUBLIC (everyone) are meant to have
# on the extension's tables, views and sequences. authenticated reads its own
# logs and, through the statistics functions (which run as their caller), the
# price catalog and its own rollups; row-level security limits the rows.
INTENDED_RELATION_PRIVILEGES = {
    "anon": set(),
    "authenticated": {
        ("public.generation_logs", "SELECT"),
        ("aurora_telemetry.generators", "SELECT"),
        ("aurora_telemetry.prices", "SELECT"),
        ("aurora_telemetry.usage_rollups", "SELECT"),
        ("aurora_telemetry.pending_usage_deltas", "SELECT"),
        ("aurora_telemetry.usage_rollups_current", "SELECT"),
        # check_budget reads the global thresholds, their own budget and spend; alerts
        # are theirs to read (row-level security: own user-scoped alerts only).
        ("aurora_telemetry.settings", "SELECT"),
        ("aurora_telemetry.budgets", "SELECT"),
        ("aurora_telemetry.spend_totals", "SELECT"),
        ("aurora_telemetry.alerts", "SELECT"),
        ("public.usage_alerts", "SELECT"),
    },
    "public": set(),
}
# The extension's functions in public and aurora_telemetry that they may call.
INTENDED_EXECUTABLE_FUNCTIONS = {
    "anon": set(),
    "authenticated": {
        "public.calculate_cost(text, integer)",
        "public.calculate_cost(text, integer, jsonb)",
        "public.get_user_usage_stats(uuid, timestamp with time zone, timestamp with time zone)",
        "public.get_user_usage_stats_json(uuid, timestamp with time zone, timestamp with time zone)",
        "public.get_user_usage_timeseries(uuid, text, timestamp with time zone, timestamp with time zone)",
        "public.check_budget(uuid, text)",
        "aurora_telemetry.latency_sketch(integer[])",
        "aurora_telemetry.sketch_count(bytea)",
        "aurora_telemetry.sketch_merge(bytea, bytea)",
        "aurora_telemetry.sketch_quantile(bytea, double precision)",
        "aurora_telemetry.sketch_union(bytea)",
    },
    "public": set(),
}
# Roles that may use the extension's private schema aurora_telemetry. The
# statistics and pricing functions run as their caller (SECURITY INVOKER, so
# row-level security applies underneath), which needs USAGE; what each role may
# then read there is the table grants and policies above. PostgREST does not
# expose the schema, and anon and PUBLIC get nothing.
INTERNAL_SCHEMA_USERS = {"authenticated", "service_role"}
# What the extension puts in the exposed schema public; internals go in aurora_telemetry.
PUBLIC_RELATIONS = {"public.generation_logs", "public.usage_alerts"}

# Analytics views (security_invoker: a user reads their own rows), the CSV export and the
# dashboard, and the administrators' functions: executable by authenticated so that
# Supabase administrators (JWT app_metadata) can call them; they refuse everyone else
# (test_admin.py).
ANALYTICS_VIEWS = {
    "public.usage_recent_generations", "public.usage_cost_this_month",
    "public.usage_success_rate_by_generator", "public.usage_response_time_by_generator",
}
PUBLIC_RELATIONS |= ANALYTICS_VIEWS
INTENDED_RELATION_PRIVILEGES["authenticated"] |= {(view, "SELECT") for view in ANALYTICS_VIEWS}
INTENDED_EXECUTABLE_FUNCTIONS["authenticated"] |= {
    "public.export_generation_logs_csv(timestamp with time zone, timestamp with time zone, uuid)",
    "public.telemetry_dashboard_html(timestamp with time zone, timestamp with time zone, uuid)",
    "public.billing_usage(date, date)",
    "public.admin_top_users_by_cost(timestamp with time zone, timestamp with time zone, integer)",
    "public.admin_daily_totals(timestamp with time zone, timestamp with time zone)",
    "public.admin_generator_performance(timestamp with time zone, timestamp with time zone)",
}

CLIENT_ROLES = list(INTENDED_RELATION_PRIVILEGES)

MEMBERS = f"""
    select d.classid, d.objid
      from pg_depend d
      join pg_extension e on e.oid = d.refobjid
     where d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
       and e.extname = '{EXTENSION}'
"""

MEMBER_RELATIONS = f"""
    select c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name, c.relkind
      from ({MEMBERS}) m
      join pg_class c on m.classid = 'pg_class'::regclass and c.oid = m.objid
      join pg_namespace n on n.oid = c.relnamespace
"""

MEMBER_FUNCTIONS = f"""
    select p.oid, n.nspname,
           n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')' as name,
           p.proconfig
      from ({MEMBERS}) m
      join pg_proc p on m.classid = 'pg_proc'::regclass and p.oid = m.objid
      join pg_namespace n on n.oid = p.pronamespace
"""


@pytest.mark.parametrize("role", CLIENT_ROLES)
def test_clients_have_exactly_the_intended_privileges_on_tables(conn, role):
    granted = conn.execute(f"""
        select r.name, p.priv
          from ({MEMBER_RELATIONS}) r
          cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE',
                                  'TRUNCATE', 'REFERENCES', 'TRIGGER']) as p(priv)
         where r.relkind <> 'S'
           and (has_table_privilege(%(role)s, r.oid, p.priv)
                or (p.priv in ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                    and has_any_column_privilege(%(role)s, r.oid, p.priv)))
        union all
        select r.name, p.priv
          from ({MEMBER_RELATIONS}) r
          cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) as p(priv)
         where r.relkind = 'S' and has_sequence_privilege(%(role)s, r.oid, p.priv)
        """, {"role": role}).fetchall()
    assert set(granted) == INTENDED_RELATION_PRIVILEGES[role]


@pytest.mark.parametrize("role", CLIENT_ROLES)
def test_clients_can_call_only_the_intended_functions(conn, role):
    executable = conn.execute(f"""
        select f.name from ({MEMBER_FUNCTIONS}) f
         where f.nspname in ('public', 'aurora_telemetry')
           and has_function_privilege(%(role)s, f.oid, 'EXECUTE')
        """, {"role": role}).fetchall()
    assert {name for (name,) in executable} == INTENDED_EXECUTABLE_FUNCTIONS[role]


def test_every_extension_function_has_a_fixed_search_path(conn):
    functions = conn.execute(f"""
        select f.name, f.proconfig from ({MEMBER_FUNCTIONS}) f join pg_proc p on p.oid = f.oid
         where p.prokind <> 'a'  -- an aggregate has no settings; its support functions do
        """).fetchall()
    assert functions, "the extension should have functions"
    unpinned = [name for name, config in functions
                if not any(setting.startswith("search_path=") for setting in config or [])]
    assert unpinned == []


@pytest.mark.parametrize("role", CLIENT_ROLES)
def test_the_internal_schema_is_closed_to_clients(conn, role):
    rows = conn.execute("""
        select has_schema_privilege(%(role)s, 'aurora_telemetry', 'USAGE'),
               has_schema_privilege(%(role)s, 'aurora_telemetry', 'CREATE')
        """, {"role": role}).fetchall()
    may_use = role in INTERNAL_SCHEMA_USERS
    assert rows == [(may_use, False)]


def test_only_the_api_is_in_the_exposed_schema(conn):
    in_public = conn.execute(
        f"select name from ({MEMBER_RELATIONS}) r where name like 'public.%'").fetchall()
    assert {name for (name,) in in_public} == PUBLIC_RELATIONS


def test_every_exposed_table_has_row_level_security(conn):
    without_rls = conn.execute(f"""
        select r.name from ({MEMBER_RELATIONS}) r join pg_class c on c.oid = r.oid
         where r.name like 'public.%' and r.relkind in ('r', 'p') and not c.relrowsecurity
        """).fetchall()
    assert without_rls == []


def test_every_extension_table_is_kept_by_pg_dump(conn):
    """Tables of an extension are left out of dumps unless registered with
    pg_extension_config_dump (they then appear in pg_extension.extconfig)."""
    tables = {name for (name,) in conn.execute(
        f"select name from ({MEMBER_RELATIONS}) r where r.relkind in ('r', 'p')")}
    registered = {name for (name,) in conn.execute(f"""
        select quote_ident(n.nspname) || '.' || quote_ident(c.relname)
          from pg_extension e, unnest(e.extconfig) as t(oid)
          join pg_class c on c.oid = t.oid join pg_namespace n on n.oid = c.relnamespace
         where e.extname = '{EXTENSION}'""")}
    assert "public.generation_logs" in tables
    assert tables - registered - DERIVED_TABLES == set()
