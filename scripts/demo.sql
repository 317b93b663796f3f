-- aurora_telemetry demo, run by scripts/demo with psql -v ON_ERROR_STOP=1.
--
-- Each block between BEGIN and COMMIT is what PostgREST does for one API
-- request: switch to the request's role, put the JWT claims in
-- request.jwt.claims (transaction-local), run the query, commit.

\set QUIET on
\set user_a 0a0a0a0a-0000-4000-8000-00000000000a
\set user_b 0b0b0b0b-0000-4000-8000-00000000000b
\set claims_a '{"sub":"' :user_a '","role":"authenticated"}'
\set claims_b '{"sub":"' :user_b '","role":"authenticated"}'

\echo '==> A fresh database, aurora_demo, with the extension'
set client_min_messages = warning;
drop database if exists aurora_demo with (force);
create database aurora_demo;
\c aurora_demo
create extension aurora_telemetry;
\dx aurora_telemetry

\echo '==> Two users (auth.users, as Supabase Auth would create them)'
insert into auth.users (id, email) values
    (:'user_a', 'ada@example.com'),
    (:'user_b', 'bob@example.com');
select id, email from auth.users order by email;

\echo '==> The backend logs three generations of Ada''s through log_generation, as service_role'
\echo '    (the Imagen-3 call is sent twice with one idempotency key: it is counted once)'
\set QUIET off
\set ECHO queries
begin;
set local role service_role;
select set_config('request.jwt.claims', '{"role":"service_role"}', true) \g /dev/null
select log_generation(:'user_a', 'Claude', 1480, prompt_length => 120,
                      metadata => '{"vibe": "serene", "reflection": "never stored"}') \g /dev/null
select log_generation(:'user_a', 'Imagen-3', 2650, prompt_length => 120,
                      metadata => '{"resolution": "1024x1024"}', idempotency_key => 'submit-1') \g /dev/null
select log_generation(:'user_a', 'Imagen-3', 2650, prompt_length => 120,
                      metadata => '{"resolution": "1024x1024"}', idempotency_key => 'submit-1') \g /dev/null
select log_generation(:'user_a', 'Midjourney', 5200, success => false,
                      error_message => 'API rate limit exceeded', prompt_length => 95) \g /dev/null
commit;

\echo
\echo '==> Ada reads her logs, as authenticated'
begin;
set local role authenticated;
select set_config('request.jwt.claims', :'claims_a', true) \g /dev/null
select generator, time_ms, cost, success, metadata from generation_logs order by created_at, time_ms;
select jsonb_pretty(get_user_usage_stats_json());
commit;

\echo
\echo '==> Bob runs the same query and sees none of Ada''s rows'
begin;
set local role authenticated;
select set_config('request.jwt.claims', :'claims_b', true) \g /dev/null
select generator, time_ms, cost, success from generation_logs order by created_at, time_ms;
commit;

\set ECHO none
\echo
\echo '==> The row-level security policies behind this'
select policyname, cmd, roles, qual, with_check
  from pg_policies where tablename = 'generation_logs' order by policyname;
