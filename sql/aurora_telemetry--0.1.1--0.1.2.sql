-- aurora_telemetry 0.1.1 -> 0.1.2
--
-- 0.1.2 applies a transaction's staged usage deltas by ctid at commit instead of marking and
-- scanning the whole staging table (src/rollups.rs), and gives the JWT administrators'
-- policies names within Postgres' 63 bytes.

ALTER TABLE aurora_telemetry.pending_usage_deltas DROP COLUMN claimed_by;

ALTER FUNCTION aurora_telemetry.maintain_usage_rollups() SET enable_seqscan = off;
ALTER FUNCTION aurora_telemetry.apply_pending_usage_deltas() SET enable_seqscan = off;

ALTER POLICY "Administrators signed in with a JWT can view all generation log"
    ON public.generation_logs RENAME TO "JWT administrators can view all generation logs";
ALTER POLICY "Administrators signed in with a JWT can read all usage rollups"
    ON aurora_telemetry.usage_rollups RENAME TO "JWT administrators can read all usage rollups";
ALTER POLICY "Administrators signed in with a JWT can read all pending usage "
    ON aurora_telemetry.pending_usage_deltas RENAME TO "JWT administrators can read all pending usage deltas";
ALTER POLICY "Administrators signed in with a JWT can read all alerts"
    ON aurora_telemetry.alerts RENAME TO "JWT administrators can read all alerts";
