-- Wire the Rust trigger functions to the tables.

-- Runs as the extension owner: it reads the private catalog, which callers cannot see.
ALTER FUNCTION aurora_telemetry.prepare_generation_log()
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

CREATE TRIGGER generation_logs_prepare
    BEFORE INSERT ON public.generation_logs
    FOR EACH ROW EXECUTE FUNCTION aurora_telemetry.prepare_generation_log();
