-- The public SQL API, implemented in Rust (src/pricing.rs, logging.rs, stats.rs,
-- repricing.rs). Declared here by hand so that schema, parameter names (PostgREST matches
-- RPC arguments by name), defaults and search_path are exactly what callers see.
-- All run as their caller (SECURITY INVOKER): row-level security applies underneath.

CREATE FUNCTION public.calculate_cost(generator text, time_ms integer)
    RETURNS numeric(10, 6)
    LANGUAGE c STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'calculate_cost_wrapper';
COMMENT ON FUNCTION public.calculate_cost(text, integer) IS
    'Cost in USD of one successful call at today''s catalog price (the seed''s calculateCost).';

CREATE FUNCTION public.calculate_cost(generator text, time_ms integer, metadata jsonb)
    RETURNS numeric(10, 6)
    LANGUAGE c STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'calculate_cost_with_metadata_wrapper';
COMMENT ON FUNCTION public.calculate_cost(text, integer, jsonb) IS
    'Cost in USD of one successful call, also pricing input_tokens, output_tokens, cache_read_tokens, cache_write_tokens and images found in metadata.';

CREATE FUNCTION public.log_generation(
        user_id uuid,
        generator text,
        time_ms integer,
        success boolean DEFAULT true,
        error_message text DEFAULT NULL,
        prompt_length integer DEFAULT 0,
        metadata jsonb DEFAULT NULL,
        idempotency_key text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'log_generation_wrapper';
COMMENT ON FUNCTION public.log_generation(uuid, text, integer, boolean, text, integer, jsonb, text) IS
    'Log one AI generation call; returns its id. A repeated (user_id, idempotency_key) returns the first id.';

CREATE FUNCTION public.get_user_usage_stats(
        user_id uuid DEFAULT auth.uid(),
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL)
    RETURNS TABLE (
        total_generations bigint,
        successful_generations bigint,
        failed_generations bigint,
        total_cost numeric,
        average_time_ms numeric,
        generator_breakdown jsonb)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'get_user_usage_stats_wrapper';
COMMENT ON FUNCTION public.get_user_usage_stats(uuid, timestamptz, timestamptz) IS
    'Usage totals of one user in [since, until), served from rollups.';

CREATE FUNCTION public.get_user_usage_stats_json(
        user_id uuid DEFAULT auth.uid(),
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'get_user_usage_stats_json_wrapper';
COMMENT ON FUNCTION public.get_user_usage_stats_json(uuid, timestamptz, timestamptz) IS
    'The seed''s GET /api/telemetry/stats response object (camelCase), served from rollups.';

CREATE FUNCTION public.get_user_usage_timeseries(
        user_id uuid DEFAULT auth.uid(),
        bucket text DEFAULT 'day',
        since timestamptz DEFAULT NULL,
        until timestamptz DEFAULT NULL)
    RETURNS TABLE (
        bucket_start timestamptz,
        generator text,
        count bigint,
        successful bigint,
        failed bigint,
        total_cost numeric,
        average_time_ms numeric,
        p50_time_ms numeric,
        p95_time_ms numeric,
        p99_time_ms numeric)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'get_user_usage_timeseries_wrapper';
COMMENT ON FUNCTION public.get_user_usage_timeseries(uuid, text, timestamptz, timestamptz) IS
    'Usage per UTC hour, day, week or month and generator, with latency percentiles.';

CREATE FUNCTION public.reprice_generation_logs(since timestamptz, until timestamptz)
    RETURNS bigint
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'reprice_generation_logs_wrapper';
COMMENT ON FUNCTION public.reprice_generation_logs(timestamptz, timestamptz) IS
    'Administrators: recompute stored costs in [since, until) from the price catalog; returns rows changed.';

CREATE FUNCTION public.check_budget(
        user_id uuid DEFAULT auth.uid(),
        generator text DEFAULT NULL)
    RETURNS TABLE (
        within_budget boolean,
        daily_spent numeric,
        daily_limit numeric,
        daily_remaining numeric,
        monthly_spent numeric,
        monthly_limit numeric,
        monthly_remaining numeric,
        hard_limit boolean,
        next_call_cost numeric)
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'check_budget_wrapper';
COMMENT ON FUNCTION public.check_budget(uuid, text) IS
    'Whether a user is within their daily and monthly budget (and would stay within it after one call of generator), with spend and what remains.';
