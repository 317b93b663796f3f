-- aurora_telemetry 0.1.1 -> 0.1.2
--
-- 0.1.2 applies a transaction's staged usage deltas by ctid at commit instead of marking and
-- scanning the whole staging table (src/rollups.rs), reads a user's staged deltas through an
-- index, and gives the JWT administrators' policies names within Postgres' 63 bytes.

ALTER TABLE aurora_telemetry.pending_usage_deltas DROP COLUMN claimed_by;

CREATE INDEX pending_usage_deltas_user_idx ON aurora_telemetry.pending_usage_deltas (user_id);

ALTER POLICY "Administrators signed in with a JWT can view all generation log"
    ON public.generation_logs RENAME TO "JWT administrators can view all generation logs";
ALTER POLICY "Administrators signed in with a JWT can read all usage rollups"
    ON aurora_telemetry.usage_rollups RENAME TO "JWT administrators can read all usage rollups";
ALTER POLICY "Administrators signed in with a JWT can read all pending usage "
    ON aurora_telemetry.pending_usage_deltas RENAME TO "JWT administrators can read all pending usage deltas";
ALTER POLICY "Administrators signed in with a JWT can read all alerts"
    ON aurora_telemetry.alerts RENAME TO "JWT administrators can read all alerts";
