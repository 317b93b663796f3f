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

REVOKE ALL ON public.generation_logs FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.generation_logs TO authenticated;
GRANT SELECT, INSERT ON public.generation_logs TO service_role;

-- The private schema is reached only through the extension's own functions.
ALTER TABLE aurora_telemetry.generators ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON ALL TABLES IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aurora_telemetry FROM PUBLIC, anon, authenticated, service_role;

-- Self-check: refuse to finish installing if any function of the extension lacks a fixed
-- search_path, so a later addition cannot forget it.
DO $check$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'aurora_telemetry');
    offender text;
BEGIN
    SELECT pg_catalog.string_agg(p.oid::pg_catalog.regprocedure::text, ', ') INTO offender
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_proc p ON p.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.refobjid = ext AND d.deptype = 'e'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search_path=%');
    IF offender IS NOT NULL THEN
        RAISE EXCEPTION 'aurora_telemetry: functions without a fixed search_path: %', offender;
    END IF;
END
$check$;
