-- aurora_telemetry: the extension as the README installs it, on top of tests/fixtures/supabase_auth.sql, with
-- its defaults: every trigger and every alert on.
create extension aurora_telemetry;
