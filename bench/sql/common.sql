-- Helpers of the benchmark, identical in every database (schema bench, never exposed).
create schema bench;
grant usage on schema bench to public;

-- User number n as a recognizable uuid: 00000000-0000-4000-8000-<n, 12 digits>.
create function bench.uid(n integer) returns uuid
language sql immutable parallel safe
as $$ select ('00000000-0000-4000-8000-' || pg_catalog.lpad(n::text, 12, '0'))::uuid $$;

-- A deterministic pseudo-random number in [0, 1) for row i and stream k: the same data in
-- every database, with no dependence on the order rows are generated in.
create function bench.rnd(i bigint, k integer) returns float8
language sql immutable parallel safe
as $$ select (pg_catalog.hashint8(i * 64 + k)::bigint + 2147483648) / 4294967296.0 $$;

-- Generation rows number row_from .. row_to - 1 of a stream, for users first_user ..
-- first_user + n_users - 1 (round robin),
-- with created_at in [t_from, t_to): a uniform day, then an hour of day that is busier from
-- 08:00 to 22:00 UTC (80% of calls). Generators 50% Claude, 30% Imagen-3, 20% Midjourney;
-- 5% failures; latency spread by generator; cost as the seed's app computes it (its
-- per-generation price; failed calls 0, as aurora_telemetry prices them).
create function bench.rows(first_user integer, n_users integer, row_from bigint, row_to bigint,
                           t_from timestamptz, t_to timestamptz, stream integer)
returns table (user_id uuid, generator text, time_ms integer, cost numeric(10, 6),
               prompt_length integer, success boolean, error_message text, metadata jsonb,
               created_at timestamptz)
language sql stable parallel safe
as $$
    select bench.uid(first_user + (i % n_users)::integer),
           g.name,
           g.time_ms,
           case when ok then g.price else 0 end,
           (10 + 2000 * bench.rnd(i + stream * 1000000000000, 3))::integer,
           ok,
           case when not ok then 'API rate limit exceeded' end,
           case when g.name = 'Claude' then '{"vibe": "serene"}'::jsonb
                else '{"vibe": "serene", "resolution": "1024x1024"}'::jsonb end,
           t.at
      from pg_catalog.generate_series(row_from, row_to - 1) as s(i)
     cross join lateral (select bench.rnd(i + stream * 1000000000000, 4) >= 0.05 as ok) as f
     cross join lateral (
            select case when r < 0.5 then 'Claude' when r < 0.8 then 'Imagen-3' else 'Midjourney' end as name,
                   case when r < 0.5 then (400 + 4600 * q * q)::integer
                        when r < 0.8 then (2000 + 8000 * q)::integer
                        else (5000 + 55000 * q * q * q)::integer end as time_ms,
                   case when r < 0.5 then 0.015 when r < 0.8 then 0.04 else 0.06 end as price
              from (select bench.rnd(i + stream * 1000000000000, 1) as r,
                           bench.rnd(i + stream * 1000000000000, 2) as q) as rq
            ) as g
     cross join lateral (
            select greatest(t_from, least(t_to - interval '1 microsecond',
                       pg_catalog.date_trunc('day', t_from + (t_to - t_from) * bench.rnd(i + stream * 1000000000000, 5), 'UTC')
                       + case when bench.rnd(i + stream * 1000000000000, 6) < 0.8
                              then interval '8 hours' + interval '14 hours' * bench.rnd(i + stream * 1000000000000, 7)
                              else interval '24 hours' * bench.rnd(i + stream * 1000000000000, 7) end)) as at
            ) as t
$$;
