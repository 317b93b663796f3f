-- Runs last in CREATE EXTENSION: row-level security, grants, and a self-check.
--
-- On Supabase, "alter default privileges in schema public grant all ... to anon,
-- authenticated, service_role" has already granted everything created above, and every new
-- function is executable by PUBLIC in any PostgreSQL. So: revoke everything, then grant
-- exactly what each role is meant to have.

-- generation_logs: the seed's policies, with auth.uid() evaluated once per statement.
ALTER TABLE public.generation_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.generation_logs FORCE ROW LEVEL SECURITY;

CREATE POLICY "Users can view own generation logs"
    ON public.generation_logs FOR SELECT
    TO authenticated
    USING ((SELECT auth.uid()) = user_id);

CREATE POLICY "Service role can insert generation logs"
    ON public.generation_logs FOR INSERT
    TO service_role
    WITH CHECK (true);

CREATE POLICY "Administrators can manage all generation logs"
    ON public.generation_logs FOR ALL
    TO aurora_telemetry_admin
    USING (true)
    WITH CHECK (true);

REVOKE ALL ON public.generation_logs FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.generation_logs TO authenticated;
GRANT SELECT, INSERT ON public.generation_logs TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.generation_logs TO aurora_telemetry_admin;

-- Public functions: nothing for PUBLIC or anon; each role gets what it is for.
REVOKE ALL ON FUNCTION
    public.calculate_cost(text, integer),
    public.calculate_cost(text, integer, jsonb),
    public.log_generation(uuid, text, integer, boolean, text, integer, jsonb, text),
    public.get_user_usage_stats(uuid, timestamptz, timestamptz),
    public.get_user_usage_stats_json(uuid, timestamptz, timestamptz),
    public.get_user_usage_timeseries(uuid, text, timestamptz, timestamptz),
    public.reprice_generation_logs(timestamptz, timestamptz),
    public.check_budget(uuid, text)
    FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    public.calculate_cost(text, integer),
    public.calculate_cost(text, integer, jsonb),
    public.get_user_usage_stats(uuid, timestamptz, timestamptz),
    public.get_user_usage_stats_json(uuid, timestamptz, timestamptz),
    public.get_user_usage_timeseries(uuid, text, timestamptz, timestamptz),
    public.check_budget(uuid, text)
    TO authenticated, service_role, aurora_telemetry_admin;
GRANT EXECUTE ON FUNCTION
    public.log_generation(uuid, text, integer, boolean, text, integer, jsonb, text)
    TO service_role, aurora_telemetry_admin;
GRANT EXECUTE ON FUNCTION
    public.reprice_generation_logs(timestamptz, timestamptz)
    TO aurora_telemetry_admin;

-- The private schema. PostgREST does not expose it; the public functions above run as their
-- caller and read it, so the API roles may use it, but only as far as each table allows.
REVOKE ALL ON ALL TABLES IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;
GRANT USAGE ON SCHEMA aurora_telemetry TO authenticated, service_role, aurora_telemetry_admin;

-- Catalogs: prices are not secret; only administrators change them.
GRANT SELECT ON aurora_telemetry.generators, aurora_telemetry.prices
    TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    aurora_telemetry.generators, aurora_telemetry.prices, aurora_telemetry.settings
    TO aurora_telemetry_admin;

-- Idempotency keys are the logging API's own bookkeeping.
GRANT SELECT, INSERT ON aurora_telemetry.idempotency_keys TO service_role, aurora_telemetry_admin;

-- Rollups: read through the statistics functions, under the same rule as the logs.
ALTER TABLE aurora_telemetry.usage_rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read own usage rollups"
    ON aurora_telemetry.usage_rollups FOR SELECT
    TO authenticated
    USING ((SELECT auth.uid()) = user_id);
CREATE POLICY "Administrators can read all usage rollups"
    ON aurora_telemetry.usage_rollups FOR SELECT
    TO aurora_telemetry_admin
    USING (true);
ALTER TABLE aurora_telemetry.pending_usage_deltas ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read own pending usage deltas"
    ON aurora_telemetry.pending_usage_deltas FOR SELECT
    TO authenticated
    USING ((SELECT auth.uid()) = user_id);
CREATE POLICY "Administrators can read all pending usage deltas"
    ON aurora_telemetry.pending_usage_deltas FOR SELECT
    TO aurora_telemetry_admin
    USING (true);
GRANT SELECT ON aurora_telemetry.usage_rollups, aurora_telemetry.pending_usage_deltas,
    aurora_telemetry.usage_rollups_current
    TO authenticated, service_role, aurora_telemetry_admin;

-- Budgets, spend and alerts: each user sees their own, administrators everything.
GRANT SELECT ON aurora_telemetry.settings TO authenticated, service_role;
ALTER TABLE aurora_telemetry.budgets ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read own budget"
    ON aurora_telemetry.budgets FOR SELECT
    TO authenticated
    USING ((SELECT auth.uid()) = user_id);
CREATE POLICY "Administrators can manage all budgets"
    ON aurora_telemetry.budgets FOR ALL
    TO aurora_telemetry_admin
    USING (true)
    WITH CHECK (true);
GRANT SELECT ON aurora_telemetry.budgets TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON aurora_telemetry.budgets TO aurora_telemetry_admin;

ALTER TABLE aurora_telemetry.spend_totals ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read own spend"
    ON aurora_telemetry.spend_totals FOR SELECT
    TO authenticated
    USING ((SELECT auth.uid()) = user_id);
CREATE POLICY "Administrators can read all spend"
    ON aurora_telemetry.spend_totals FOR SELECT
    TO aurora_telemetry_admin
    USING (true);
GRANT SELECT ON aurora_telemetry.spend_totals TO authenticated, service_role, aurora_telemetry_admin;

ALTER TABLE aurora_telemetry.alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read own alerts"
    ON aurora_telemetry.alerts FOR SELECT
    TO authenticated
    USING (scope = 'user' AND (SELECT auth.uid()) = user_id);
CREATE POLICY "Administrators can read all alerts"
    ON aurora_telemetry.alerts FOR SELECT
    TO aurora_telemetry_admin
    USING (true);
GRANT SELECT ON aurora_telemetry.alerts TO authenticated, service_role, aurora_telemetry_admin;
REVOKE ALL ON public.usage_alerts FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.usage_alerts TO authenticated, service_role, aurora_telemetry_admin;
GRANT SELECT ON aurora_telemetry.alert_failures TO aurora_telemetry_admin;

-- Pure helpers the statistics queries call (no data access).
GRANT EXECUTE ON FUNCTION
    aurora_telemetry.latency_sketch(integer[]),
    aurora_telemetry.sketch_merge(bytea, bytea),
    aurora_telemetry.sketch_union(bytea),
    aurora_telemetry.sketch_quantile(bytea, double precision),
    aurora_telemetry.sketch_count(bytea)
    TO authenticated, service_role, aurora_telemetry_admin;
GRANT EXECUTE ON FUNCTION aurora_telemetry.setting_is_valid(text, jsonb) TO aurora_telemetry_admin;

-- Self-check: refuse to finish installing if any function of the extension lacks a fixed
-- search_path or is executable by anon, so a later addition cannot forget either.
-- (Schema "tests" holds the #[pg_test] functions of the test build only.)
DO $check$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'aurora_telemetry');
    test_schema oid := pg_catalog.to_regnamespace('tests');
    offender text;
BEGIN
    SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ') INTO offender
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_proc p ON p.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid = ext AND d.deptype = 'e'
       AND p.prokind <> 'a'
       AND p.pronamespace IS DISTINCT FROM test_schema
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search_path=%');
    IF offender IS NOT NULL THEN
        RAISE EXCEPTION 'aurora_telemetry: functions without a fixed search_path: %', offender;
    END IF;

    SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ') INTO offender
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_proc p ON p.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid = ext AND d.deptype = 'e'
       AND p.pronamespace <> 'auth'::pg_catalog.regnamespace
       AND p.pronamespace IS DISTINCT FROM test_schema
       AND pg_catalog.has_function_privilege('anon', p.oid, 'EXECUTE');
    IF offender IS NOT NULL THEN
        RAISE EXCEPTION 'aurora_telemetry: functions executable by anon: %', offender;
    END IF;
END
$check$;
