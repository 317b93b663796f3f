-- pgbench script: one transaction, two multi-row INSERT statements, 8 rows in all, for
-- random users in random order (the shape that deadlocks naive per-row rollup upserts).
BEGIN;
SET LOCAL ROLE service_role;
INSERT INTO public.generation_logs (user_id, generator, time_ms, success, prompt_length)
SELECT ('aaaaaaaa-0000-4000-8000-' || lpad((1 + floor(random() * :users))::int::text, 12, '0'))::uuid, (ARRAY['Claude', 'Imagen-3', 'Midjourney'])[1 + floor(random() * 3)::int], floor(random() * 20000)::int, random() > 0.1, floor(random() * 2000)::int FROM generate_series(1, 5);
INSERT INTO public.generation_logs (user_id, generator, time_ms, success, prompt_length)
SELECT ('aaaaaaaa-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 'Midjourney', floor(random() * 20000)::int, true, 0 FROM generate_series(:users, 1, -1) AS u ORDER BY random() LIMIT 3;
COMMIT;
