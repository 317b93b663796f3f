-- The query inside aurora_telemetry's get_user_usage_stats (TOTALS_SQL in src/stats.rs, as of
-- the benchmark's commit) for an all-time range, whose plan is one piece: the user's monthly
-- rollups. pgbench runs it with -M simple (parsed and planned at every call, as the
-- extension's SPI call does today) and -M prepared (a kept plan) to measure what planning
-- costs. User :u (pgbench -D u=N).
SELECT s.generator, pg_catalog.sum(s.generations)::bigint, pg_catalog.sum(s.successful)::bigint,
       pg_catalog.sum(s.total_cost), pg_catalog.sum(s.total_time_ms)::bigint
  FROM (
        SELECT r.generator, r.generations, r.successful, r.total_cost, r.total_time_ms
          FROM unnest(ARRAY['month']::text[], ARRAY['-infinity']::timestamptz[], ARRAY['infinity']::timestamptz[]) AS p(source, lo, hi)
          JOIN aurora_telemetry.usage_rollups_current r
            ON r.user_id = ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid
           AND r.level = p.source AND r.bucket_start >= p.lo AND r.bucket_start < p.hi
        UNION ALL
        SELECT g.generator, 1, CASE WHEN g.success THEN 1 ELSE 0 END, COALESCE(g.cost, 0), g.time_ms
          FROM unnest(ARRAY['month']::text[], ARRAY['-infinity']::timestamptz[], ARRAY['infinity']::timestamptz[]) AS p(source, lo, hi)
          JOIN public.generation_logs g
            ON p.source = 'raw' AND g.user_id = ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid
           AND g.created_at >= p.lo AND g.created_at < p.hi
       ) s
 WHERE s.generations > 0
 GROUP BY s.generator
 ORDER BY s.generator;
