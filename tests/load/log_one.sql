-- pgbench script: one call logged through log_generation, as the application's backend
-- does it (a PostgREST-style transaction as service_role). 1 row per transaction.
-- Users are aaaaaaaa-0000-4000-8000-<n as 12 digits>, n in 1..:users (pgbench -D users=N).
\set user random(1, :users)
\set gen random(1, 3)
\set ms random(20, 20000)
\set ok random(0, 9)
BEGIN;
SET LOCAL ROLE service_role;
SELECT public.log_generation(('aaaaaaaa-0000-4000-8000-' || lpad(:user::text, 12, '0'))::uuid, (ARRAY['Claude', 'Imagen-3', 'Midjourney'])[:gen], :ms, :ok > 0, prompt_length => :ms / 10);
COMMIT;
