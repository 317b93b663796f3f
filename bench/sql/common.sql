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

-- Generation rows number row_from .. row_to - 1 of a stream of n_total rows, for users
-- first_user .. first_user + n_users - 1 (round robin), in time order: row i falls on the day
-- at position i / n_total of [t_from, t_to), so a batch of consecutive rows covers a stretch
-- of days, as logs arrive; within a day, 80% of calls fall between 08:00 and 22:00 UTC (a
-- range shorter than a day is filled evenly). Generators 50% Claude, 30% Imagen-3, 20%
-- Midjourney; 5% failures; latency spread by generator; cost as the seed's app computes it
-- (its per-generation price; failed calls 0, as aurora_telemetry prices them).
create function bench.rows(first_user integer, n_users integer, row_from bigint, row_to bigint, n_total bigint,
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
     cross join lateral (select bench.rnd(i + stream * 1000000000000, 4) >= 0.05 as ok,
                                (i + bench.rnd(i + stream * 1000000000000, 5)) / n_total as pos) as f
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
                   case when t_to - t_from <= interval '1 day' then t_from + (t_to - t_from) * f.pos
                        else pg_catalog.date_trunc('day', t_from + (t_to - t_from) * f.pos, 'UTC')
                             + case when bench.rnd(i + stream * 1000000000000, 6) < 0.8
                                    then interval '8 hours' + interval '14 hours' * bench.rnd(i + stream * 1000000000000, 7)
                                    else interval '24 hours' * bench.rnd(i + stream * 1000000000000, 7) end
                   end)) as at
            ) as t
$$;
