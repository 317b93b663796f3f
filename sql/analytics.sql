-- Analytics, CSV and billing export, administrators' analytics and the dashboard
-- (src/analytics.rs, export.rs, dashboard.rs). Everything here runs as its caller
-- (SECURITY INVOKER views and functions): row-level security applies underneath.

-- Who is an administrator: a member of the role aurora_telemetry_admin (superusers are
-- members of every role), or, on Supabase, a signed-in user whose JWT app_metadata has
-- "aurora_telemetry_admin": true (JSON true, not the string). app_metadata is written only
-- through Supabase's admin API (service key), never by the user; user_metadata, which users
-- may edit, is never read. src/access.rs (caller_is_admin) applies the same rule in the
-- functions; the policies below let such administrators (role authenticated) read every
-- user's logs, the rollups the statistics are served from, and the alerts. They change
-- nothing through these policies.
CREATE POLICY "JWT administrators can view all generation logs"
    ON public.generation_logs FOR SELECT
    TO authenticated
    USING (((SELECT auth.jwt()) -> 'app_metadata' -> 'aurora_telemetry_admin') = 'true'::jsonb);
CREATE POLICY "JWT administrators can read all usage rollups"
    ON aurora_telemetry.usage_rollups FOR SELECT
    TO authenticated
    USING (((SELECT auth.jwt()) -> 'app_metadata' -> 'aurora_telemetry_admin') = 'true'::jsonb);
CREATE POLICY "JWT administrators can read all pending usage deltas"
    ON aurora_telemetry.pending_usage_deltas FOR SELECT
    TO authenticated
    USING (((SELECT auth.jwt()) -> 'app_metadata' -> 'aurora_telemetry_admin') = 'true'::jsonb);
CREATE POLICY "JWT administrators can read all alerts"
    ON aurora_telemetry.alerts FOR SELECT
    TO authenticated
    USING (((SELECT auth.jwt()) -> 'app_metadata' -> 'aurora_telemetry_admin') = 'true'::jsonb);

-- The administrators' analytics and billing read rollups of all users by level and time.
CREATE INDEX usage_rollups_level_bucket_idx ON aurora_telemetry.usage_rollups (level, bucket_start);

-- The seed's four analytics queries as views: the same columns, the signed-in user's rows
-- only (an administrator, too, sees their own here), plus latency percentiles where the seed
-- has averages. percentile_disc: a latency that was actually observed.
CREATE VIEW public.usage_recent_generations WITH (security_invoker = true) AS
    SELECT g.generator, g.time_ms, g.cost, g.success, g.created_at
      FROM public.generation_logs g
     WHERE g.user_id = (SELECT auth.uid())
     ORDER BY g.created_at DESC
     LIMIT 50;
COMMENT ON VIEW public.usage_recent_generations IS
    'The signed-in user''s 50 most recent generations (the seed''s "View Recent Generations").';

CREATE VIEW public.usage_cost_this_month WITH (security_invoker = true) AS
    SELECT pg_catalog.sum(g.cost) AS total_cost,
           pg_catalog.count(*) AS total_generations
      FROM public.generation_logs g
     WHERE g.user_id = (SELECT auth.uid())
       AND g.created_at >= pg_catalog.date_trunc('month', pg_catalog.now());
COMMENT ON VIEW public.usage_cost_this_month IS
    'The signed-in user''s cost and generations since the start of this month (the seed''s "Total Cost This Month").';

CREATE VIEW public.usage_success_rate_by_generator WITH (security_invoker = true) AS
    SELECT g.generator,
           pg_catalog.count(*) AS total,
           pg_catalog.sum(CASE WHEN g.success THEN 1 ELSE 0 END) AS successful,
           pg_catalog.round(100.0 * pg_catalog.sum(CASE WHEN g.success THEN 1 ELSE 0 END) / pg_catalog.count(*), 2)
               AS success_rate
      FROM public.generation_logs g
     WHERE g.user_id = (SELECT auth.uid())
     GROUP BY g.generator;
COMMENT ON VIEW public.usage_success_rate_by_generator IS
    'The signed-in user''s calls, successes and success rate (%) per generator (the seed''s "Success Rate by Generator").';

CREATE VIEW public.usage_response_time_by_generator WITH (security_invoker = true) AS
    SELECT g.generator,
           pg_catalog.avg(g.time_ms) AS avg_time_ms,
           pg_catalog.min(g.time_ms) AS min_time_ms,
           pg_catalog.max(g.time_ms) AS max_time_ms,
           pg_catalog.percentile_disc(0.5) WITHIN GROUP (ORDER BY g.time_ms) AS p50_time_ms,
           pg_catalog.percentile_disc(0.95) WITHIN GROUP (ORDER BY g.time_ms) AS p95_time_ms
      FROM public.generation_logs g
     WHERE g.user_id = (SELECT auth.uid())
       AND g.success = true
     GROUP BY g.generator;
COMMENT ON VIEW public.usage_response_time_by_generator IS
    'Latency of the signed-in user''s successful calls per generator: the seed''s "Average Response Time" plus p50 and p95.';

REVOKE ALL ON public.usage_recent_generations, public.usage_cost_this_month,
    public.usage_success_rate_by_generator, public.usage_response_time_by_generator
    FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.usage_recent_generations, public.usage_cost_this_month,
    public.usage_success_rate_by_generator, public.usage_response_time_by_generator
    TO authenticated, service_role, aurora_telemetry_admin;

-- CSV export (src/export.rs). Authorization as for the statistics.
CREATE FUNCTION public.export_generation_logs_csv(
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL,
        user_id uuid DEFAULT auth.uid())
    RETURNS text
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'export_generation_logs_csv_wrapper';
COMMENT ON FUNCTION public.export_generation_logs_csv(timestamptz, timestamptz, uuid) IS
    'One user''s generation logs in [since, until) as RFC 4180 CSV with a header line; COPY ... (FORMAT csv, HEADER) reads it back.';

-- Billing export (src/analytics.rs): administrators only.
CREATE FUNCTION public.billing_usage(period_start date, period_end date)
    RETURNS TABLE (
        user_id uuid,
        generator text,
        quantity bigint,
        amount numeric,
        amount_micro_usd bigint,
        idempotency_key text,
        meter_event jsonb)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_usage_wrapper';
COMMENT ON FUNCTION public.billing_usage(date, date) IS
    'Administrators: calls and cost per user and generator in the UTC days [period_start, period_end), with a stable idempotency key and a Stripe meter event.';

-- The administrators' analytics across all users (src/analytics.rs).
CREATE FUNCTION public.admin_top_users_by_cost(
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL,
        top integer DEFAULT 10)
    RETURNS TABLE (
        rank bigint,
        user_id uuid,
        total_generations bigint,
        successful_generations bigint,
        failed_generations bigint,
        total_cost numeric,
        average_time_ms numeric)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'admin_top_users_by_cost_wrapper';
COMMENT ON FUNCTION public.admin_top_users_by_cost(timestamptz, timestamptz, integer) IS
    'Administrators: the users with the highest cost in [since, until), biggest first.';

CREATE FUNCTION public.admin_daily_totals(
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL)
    RETURNS TABLE (
        day date,
        total_generations bigint,
        successful_generations bigint,
        failed_generations bigint,
        total_cost numeric,
        average_time_ms numeric,
        active_users bigint)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'admin_daily_totals_wrapper';
COMMENT ON FUNCTION public.admin_daily_totals(timestamptz, timestamptz) IS
    'Administrators: totals per UTC day across all users in [since, until).';

CREATE FUNCTION public.admin_generator_performance(
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL)
    RETURNS TABLE (
        generator text,
        total bigint,
        successful bigint,
        failed bigint,
        success_rate numeric,
        total_cost numeric,
        average_time_ms numeric,
        p50_time_ms numeric,
        p95_time_ms numeric,
        p99_time_ms numeric)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'admin_generator_performance_wrapper';
COMMENT ON FUNCTION public.admin_generator_performance(timestamptz, timestamptz) IS
    'Administrators: success rate and latency per generator across all users in [since, until).';

-- The dashboard (src/dashboard.rs).
CREATE FUNCTION public.telemetry_dashboard_html(
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL,
        user_id uuid DEFAULT auth.uid())
    RETURNS text
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'telemetry_dashboard_html_wrapper';
COMMENT ON FUNCTION public.telemetry_dashboard_html(timestamptz, timestamptz, uuid) IS
    'A self-contained HTML page with SVG charts of one user''s usage, or (administrators, user_id NULL) of all users''.';

-- Nothing for PUBLIC or anon. The administrators' functions are executable by authenticated
-- so that Supabase administrators (JWT app_metadata) can call them; they check the caller
-- first and refuse everyone else with SQLSTATE 42501.
REVOKE ALL ON FUNCTION
    public.export_generation_logs_csv(timestamptz, timestamptz, uuid),
    public.billing_usage(date, date),
    public.admin_top_users_by_cost(timestamptz, timestamptz, integer),
    public.admin_daily_totals(timestamptz, timestamptz),
    public.admin_generator_performance(timestamptz, timestamptz),
    public.telemetry_dashboard_html(timestamptz, timestamptz, uuid)
    FROM PUBLIC, anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    public.export_generation_logs_csv(timestamptz, timestamptz, uuid),
    public.telemetry_dashboard_html(timestamptz, timestamptz, uuid)
    TO authenticated, service_role, aurora_telemetry_admin;
GRANT EXECUTE ON FUNCTION
    public.billing_usage(date, date),
    public.admin_top_users_by_cost(timestamptz, timestamptz, integer),
    public.admin_daily_totals(timestamptz, timestamptz),
    public.admin_generator_performance(timestamptz, timestamptz)
    TO authenticated, aurora_telemetry_admin;
