-- public.consistency_check(calls_counted): one row saying whether the derived tables of
-- aurora_telemetry equal plain SQL over the raw rows of public.generation_logs. Used by the
-- isolation specs (tests/isolation/generate_specs.py embeds it in every spec's setup) and by
-- tests/test_load_and_crash.py. Every *_drift column counts rows that differ (0 when
-- exact); `pending` counts staged deltas left behind (0 outside a transaction);
-- `cost_alerts` and `fired` say which cost alerts exist; `claim_drift` counts cost alerts
-- without their alert_state claim and claims without their alert (0).
CREATE OR REPLACE FUNCTION public.consistency_check(calls_counted boolean DEFAULT true)
RETURNS TABLE (logged bigint, rollup_drift bigint, spend_drift bigint, hourly_drift bigint,
               pending bigint, cost_alerts bigint, claim_drift bigint, fired text)
LANGUAGE sql AS $$
  WITH raw AS (
    SELECT user_id, lvl, date_trunc(lvl, created_at, 'UTC') AS bucket_start, generator,
           count(*) AS n, count(*) FILTER (WHERE success) AS ok, sum(cost) AS cost,
           sum(time_ms) AS t
      FROM public.generation_logs, unnest(ARRAY['hour', 'day', 'month']) AS lvl
     GROUP BY 1, 2, 3, 4),
  raw_spend AS (
    SELECT user_id, lvl, bucket_start, sum(cost) AS cost, sum(n) AS n
      FROM raw WHERE lvl IN ('day', 'month') GROUP BY 1, 2, 3),
  raw_hourly AS (
    SELECT generator, bucket_start, sum(n) AS n, sum(n - ok) AS failed, sum(t) AS t
      FROM raw WHERE lvl = 'hour' GROUP BY 1, 2),
  hourly AS (
    SELECT generator, hour_start, sum(generations) AS n, sum(failed) AS failed,
           sum(total_time_ms) AS t
      FROM aurora_telemetry.generator_hourly GROUP BY 1, 2)
  SELECT
    (SELECT count(*) FROM public.generation_logs),
    (SELECT count(*)
       FROM raw FULL JOIN aurora_telemetry.usage_rollups r
         ON r.user_id = raw.user_id AND r.level = raw.lvl
        AND r.bucket_start = raw.bucket_start AND r.generator = raw.generator
      WHERE r.user_id IS NULL OR raw.user_id IS NULL
         OR (r.generations, r.successful, r.total_cost, r.total_time_ms,
             aurora_telemetry.sketch_count(r.latency_sketch))
            IS DISTINCT FROM (raw.n, raw.ok, raw.cost, raw.t, raw.n)),
    (SELECT count(*)
       FROM raw_spend FULL JOIN aurora_telemetry.spend_totals s
         ON s.user_id = raw_spend.user_id AND s.period = raw_spend.lvl
        AND s.period_start = raw_spend.bucket_start
      WHERE s.user_id IS NULL OR raw_spend.user_id IS NULL
         OR (s.total_cost, s.generations) IS DISTINCT FROM (raw_spend.cost, raw_spend.n)),
    -- The per-generator call counters count calls as they were made (a deleted or
    -- updated row stays counted as made), so they are compared only where no row was
    -- deleted or updated.
    CASE WHEN calls_counted THEN
    (SELECT count(*)
       FROM raw_hourly FULL JOIN hourly h
         ON h.generator = raw_hourly.generator AND h.hour_start = raw_hourly.bucket_start
      WHERE h.generator IS NULL OR raw_hourly.generator IS NULL
         OR (h.n, h.failed, h.t) IS DISTINCT FROM (raw_hourly.n, raw_hourly.failed, raw_hourly.t))
    ELSE 0 END,
    (SELECT count(*) FROM aurora_telemetry.pending_usage_deltas),
    (SELECT count(*) FROM aurora_telemetry.alerts WHERE kind = 'cost_alert'),
    -- Every alert has its claim in alert_state and every claim its alert.
    (SELECT count(*)
       FROM (SELECT * FROM aurora_telemetry.alert_state WHERE kind = 'cost_alert') st
       FULL JOIN (SELECT * FROM aurora_telemetry.alerts WHERE kind = 'cost_alert') a
         ON a.id = st.alert_id AND a.level = st.level AND a.window_start = st.window_start
      WHERE a.id IS NULL OR st.alert_id IS NULL),
    (SELECT string_agg(format('level %s at %s', a.level, a.payload ->> 'daily_cost'), ', '
                       ORDER BY a.level)
       FROM aurora_telemetry.alerts a WHERE a.kind = 'cost_alert')
$$;
