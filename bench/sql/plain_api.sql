-- The statistics of the Seed and Bare designs in plain SQL, aggregating the user's rows on
-- every call: what the seed's getUserUsageStats / GET /api/telemetry/stats does, written as
-- well as plain SQL allows (one pass over the user's rows, index range on created_at).
-- Same names, parameters and columns as aurora_telemetry's functions, so the harness calls
-- all three designs with the same statement.

create function public.get_user_usage_stats(
        user_id uuid,
        since timestamptz default null,
        until timestamptz default null)
    returns table (
        total_generations bigint,
        successful_generations bigint,
        failed_generations bigint,
        total_cost numeric,
        average_time_ms numeric,
        generator_breakdown jsonb)
    language sql stable
as $$
    select coalesce(sum(g.n), 0)::bigint,
           coalesce(sum(g.ok), 0)::bigint,
           coalesce(sum(g.n - g.ok), 0)::bigint,
           coalesce(sum(g.c), 0),
           coalesce(round(sum(g.t)::numeric / nullif(sum(g.n), 0), 2), 0),
           coalesce(jsonb_object_agg(g.generator, jsonb_build_object(
                        'count', g.n, 'totalCost', g.c, 'averageTimeMs', round(g.t::numeric / g.n, 2))),
                    '{}'::jsonb)
      from (select l.generator, count(*) as n, count(*) filter (where l.success) as ok,
                   coalesce(sum(l.cost), 0) as c, sum(l.time_ms) as t
              from public.generation_logs l
             where l.user_id = get_user_usage_stats.user_id
               and l.created_at >= coalesce(get_user_usage_stats.since, '-infinity')
               and l.created_at < coalesce(get_user_usage_stats.until, 'infinity')
             group by l.generator) g
$$;

-- Per UTC bucket and generator, with exact latency percentiles.
create function public.get_user_usage_timeseries(
        user_id uuid,
        bucket text default 'day',
        since timestamptz default null,
        until timestamptz default null)
    returns table (
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
    language sql stable
as $$
    select date_trunc(get_user_usage_timeseries.bucket, l.created_at, 'UTC'), l.generator,
           count(*), count(*) filter (where l.success), count(*) filter (where not l.success),
           coalesce(sum(l.cost), 0), round(avg(l.time_ms), 2),
           percentile_cont(0.50) within group (order by l.time_ms)::numeric,
           percentile_cont(0.95) within group (order by l.time_ms)::numeric,
           percentile_cont(0.99) within group (order by l.time_ms)::numeric
      from public.generation_logs l
     where l.user_id = get_user_usage_timeseries.user_id
       and l.created_at >= coalesce(get_user_usage_timeseries.since, '-infinity')
       and l.created_at < coalesce(get_user_usage_timeseries.until, 'infinity')
     group by 1, 2
     order by 1, 2
$$;

-- The spend behind a budget check: the user's cost today and this month (UTC), against the
-- seed's $10.00 daily limit.
create function public.check_budget(user_id uuid, generator text default null)
    returns table (within_budget boolean, daily_spent numeric, monthly_spent numeric)
    language sql stable
as $$
    select coalesce(sum(l.cost) filter (where l.created_at >= date_trunc('day', now(), 'UTC')), 0) < 10.00,
           coalesce(sum(l.cost) filter (where l.created_at >= date_trunc('day', now(), 'UTC')), 0),
           coalesce(sum(l.cost), 0)
      from public.generation_logs l
     where l.user_id = check_budget.user_id
       and l.created_at >= date_trunc('month', now(), 'UTC')
$$;
