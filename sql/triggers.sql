-- Wire the Rust trigger functions to the tables.

-- They run as the extension owner: they read the private catalogs and write the private
-- rollups, spend totals and alerts, which callers cannot touch directly.
ALTER FUNCTION aurora_telemetry.prepare_generation_log()
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aurora_telemetry.maintain_usage_rollups()
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION aurora_telemetry.apply_pending_usage_deltas()
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER generation_logs_prepare
    BEFORE INSERT ON public.generation_logs
    FOR EACH ROW EXECUTE FUNCTION aurora_telemetry.prepare_generation_log();

-- A trigger with transition tables handles one event, hence one per event.
CREATE TRIGGER generation_logs_rollup_insert
    AFTER INSERT ON public.generation_logs
    REFERENCING NEW TABLE AS aurora_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.maintain_usage_rollups();
CREATE TRIGGER generation_logs_rollup_update
    AFTER UPDATE ON public.generation_logs
    REFERENCING OLD TABLE AS aurora_old_rows NEW TABLE AS aurora_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.maintain_usage_rollups();
CREATE TRIGGER generation_logs_rollup_delete
    AFTER DELETE ON public.generation_logs
    REFERENCING OLD TABLE AS aurora_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.maintain_usage_rollups();
CREATE TRIGGER generation_logs_rollup_truncate
    AFTER TRUNCATE ON public.generation_logs
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.maintain_usage_rollups();

-- Any change to the catalogs that every insert reads tells each backend to drop its copy
-- (see src/catalog_cache.rs).
ALTER FUNCTION aurora_telemetry.catalog_changed()
    SET search_path = pg_catalog, pg_temp;
CREATE TRIGGER prices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aurora_telemetry.prices
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.catalog_changed();
CREATE TRIGGER generators_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aurora_telemetry.generators
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.catalog_changed();
CREATE TRIGGER settings_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aurora_telemetry.settings
    FOR EACH STATEMENT EXECUTE FUNCTION aurora_telemetry.catalog_changed();

-- Staged rollup deltas are applied at commit (see src/rollups.rs).
CREATE CONSTRAINT TRIGGER pending_usage_deltas_apply
    AFTER INSERT ON aurora_telemetry.pending_usage_deltas
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION aurora_telemetry.apply_pending_usage_deltas();

-- Settings are validated when written (see src/settings.rs).
ALTER TABLE aurora_telemetry.settings
    ADD CONSTRAINT settings_value_valid CHECK (aurora_telemetry.setting_is_valid(name, value));
