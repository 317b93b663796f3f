-- The DROP EXTENSION guard (src/drop_guard.rs). Event triggers need a superuser: where the
-- installing role is not one, the extension works without the guard.
CREATE FUNCTION aurora_telemetry.guard_drop_extension()
    RETURNS event_trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'guard_drop_extension_wrapper';

DO $guard$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER) THEN
        CREATE EVENT TRIGGER aurora_telemetry_guard_drop
            ON ddl_command_start
            WHEN TAG IN ('DROP EXTENSION')
            EXECUTE FUNCTION aurora_telemetry.guard_drop_extension();
    ELSE
        RAISE NOTICE 'aurora_telemetry: not a superuser, so DROP EXTENSION is not guarded; it deletes the logs it holds';
    END IF;
END
$guard$;
