-- aurora_telemetry 0.1.0 -> 0.1.1
--
-- 0.1.1 keeps a per-backend copy of prices, generators and settings (src/catalog_cache.rs);
-- statement triggers on those tables tell every backend when its copy is stale.

CREATE FUNCTION aurora_telemetry.catalog_changed()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'catalog_changed_wrapper';

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

REVOKE ALL ON FUNCTION aurora_telemetry.catalog_changed() FROM PUBLIC;
