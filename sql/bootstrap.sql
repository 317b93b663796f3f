-- aurora_telemetry bootstrap: runs first in CREATE EXTENSION.
--
-- 1. Refuse a private schema that someone else prepared (an object planted there in advance
--    would otherwise be trusted by the extension's privileged functions).
-- 2. Use Supabase's roles and auth schema when present; on a plain PostgreSQL create a
--    compatible minimal stand-in, so the same policies work on both.

DO $guard$
DECLARE
    schema_owner oid;
BEGIN
    SELECT n.nspowner INTO schema_owner
      FROM pg_catalog.pg_namespace n
     WHERE n.nspname = 'aurora_telemetry';

    IF schema_owner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = schema_owner) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = 'schema "aurora_telemetry" already exists and belongs to another role',
            HINT = 'Drop that schema, or let a superuser create it, before CREATE EXTENSION aurora_telemetry.';
    END IF;

    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = 'aurora_telemetry'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'aurora_telemetry'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace = 'aurora_telemetry'::pg_catalog.regnamespace) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'duplicate_object',
            MESSAGE = 'schema "aurora_telemetry" is not empty',
            HINT = 'The extension installs into a schema of its own; remove the objects found there first.';
    END IF;
END
$guard$;

REVOKE ALL ON SCHEMA aurora_telemetry FROM PUBLIC;

-- Supabase's API roles and the extension's administrator role. Roles are cluster-wide and never members of the extension, so an
-- existing role (Supabase, or an earlier install) is used as it is.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    -- Administrators of the extension: grant this role to whoever may change prices and
    -- settings and read every user's telemetry.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'aurora_telemetry_admin') THEN
        CREATE ROLE aurora_telemetry_admin NOLOGIN;
    END IF;
END
$roles$;

-- Supabase's auth schema, or a stand-in that reads the JWT claims exactly as Supabase does:
-- the older per-claim setting first, then the claims object, and '' counts as absent
-- (a committed SET LOCAL leaves '' behind on the same connection).
DO $auth$
BEGIN
    IF pg_catalog.to_regnamespace('auth') IS NULL THEN
        CREATE SCHEMA auth;

        CREATE TABLE auth.users (
            id                uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
            email             text UNIQUE,
            raw_app_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at        timestamptz NOT NULL DEFAULT pg_catalog.now()
        );
        COMMENT ON TABLE auth.users IS
            'Stand-in for Supabase auth.users, created by aurora_telemetry because schema auth was absent.';
        PERFORM pg_catalog.pg_extension_config_dump('auth.users', '');

        CREATE FUNCTION auth.uid() RETURNS uuid
            LANGUAGE sql STABLE
            SET search_path = pg_catalog, pg_temp
            AS $fn$
                SELECT COALESCE(
                    NULLIF(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
                    (NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
                )::uuid
            $fn$;

        CREATE FUNCTION auth.role() RETURNS text
            LANGUAGE sql STABLE
            SET search_path = pg_catalog, pg_temp
            AS $fn$
                SELECT COALESCE(
                    NULLIF(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
                    (NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
                )::text
            $fn$;

        CREATE FUNCTION auth.jwt() RETURNS jsonb
            LANGUAGE sql STABLE
            SET search_path = pg_catalog, pg_temp
            AS $fn$
                SELECT COALESCE(
                    NULLIF(pg_catalog.current_setting('request.jwt.claim', true), ''),
                    NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')
                )::jsonb
            $fn$;

        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
        REVOKE ALL ON auth.users FROM PUBLIC;
    ELSIF pg_catalog.to_regclass('auth.users') IS NULL
       OR pg_catalog.to_regprocedure('auth.uid()') IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'schema "auth" exists but has no auth.users table or no auth.uid() function',
            HINT = 'aurora_telemetry uses Supabase''s auth schema when it exists and creates a stand-in only when schema "auth" is absent. '
                || 'When restoring a dump, restore schema auth before the extension (on Supabase the platform does; dump with --exclude-schema=auth).';
    END IF;
END
$auth$;
