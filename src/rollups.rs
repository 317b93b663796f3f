//! Usage rollups: per user, generator and UTC hour, day and month, kept exact in the same
//! transaction as every change to `public.generation_logs`.
//!
//! Statement-level AFTER triggers see all rows of one INSERT, UPDATE, DELETE or COPY at once
//! through transition tables and aggregate them into one delta per rollup key.
//!
//! New rows (the hot path) are not applied at once: their deltas are staged in
//! `pending_usage_deltas`, and a deferred trigger applies everything the transaction staged
//! just before it commits, with one upsert sorted by key (`ON CONFLICT DO UPDATE` adds
//! atomically under concurrency). Rollup rows are thus locked only during commit and always
//! in the same order, so writers neither deadlock nor wait on each other for long, however
//! many statements and users a transaction has. Old rows (deletes, updates: administrative
//! and rare) are subtracted immediately.

use crate::errors::{self, OrReport, TelemetryError};
use pgrx::prelude::*;

/// One delta per (user, level, bucket, generator) from the rows of a transition table.
macro_rules! deltas_from {
    ($rows:literal) => {
        concat!(
            "SELECT t.user_id, b.level, b.bucket_start, t.generator,
                    pg_catalog.count(*) AS generations,
                    pg_catalog.count(*) FILTER (WHERE t.success) AS successful,
                    COALESCE(pg_catalog.sum(t.cost), 0) AS total_cost,
                    pg_catalog.sum(t.time_ms) AS total_time_ms,
                    aurora_telemetry.latency_sketch(pg_catalog.array_agg(t.time_ms)) AS latency_sketch
               FROM ",
            $rows,
            " t
              CROSS JOIN LATERAL (VALUES
                    ('hour',  pg_catalog.date_trunc('hour',  t.created_at, 'UTC')),
                    ('day',   pg_catalog.date_trunc('day',   t.created_at, 'UTC')),
                    ('month', pg_catalog.date_trunc('month', t.created_at, 'UTC'))
              ) AS b(level, bucket_start)
              GROUP BY t.user_id, b.level, b.bucket_start, t.generator"
        )
    };
}

const STAGE_NEW_ROWS: &str = concat!(
    "INSERT INTO aurora_telemetry.pending_usage_deltas
        (user_id, level, bucket_start, generator, generations, successful, total_cost, total_time_ms, latency_sketch) ",
    deltas_from!("aurora_new_rows")
);

/// Everything this transaction staged, in one statement sorted by key. Other transactions'
/// staged rows are invisible here, so only this transaction's are taken.
const APPLY_STAGED: &str = "
    WITH staged AS (DELETE FROM aurora_telemetry.pending_usage_deltas RETURNING *)
    INSERT INTO aurora_telemetry.usage_rollups AS r
        (user_id, level, bucket_start, generator, generations, successful, total_cost, total_time_ms, latency_sketch)
    SELECT user_id, level, bucket_start, generator, pg_catalog.sum(generations), pg_catalog.sum(successful),
           pg_catalog.sum(total_cost), pg_catalog.sum(total_time_ms), aurora_telemetry.sketch_union(latency_sketch)
      FROM staged
     GROUP BY user_id, level, bucket_start, generator
     ORDER BY user_id, level, bucket_start, generator
     ON CONFLICT (user_id, level, bucket_start, generator) DO UPDATE SET
        generations    = r.generations + EXCLUDED.generations,
        successful     = r.successful + EXCLUDED.successful,
        total_cost     = r.total_cost + EXCLUDED.total_cost,
        total_time_ms  = r.total_time_ms + EXCLUDED.total_time_ms,
        latency_sketch = aurora_telemetry.sketch_merge(r.latency_sketch, EXCLUDED.latency_sketch)";

const SUBTRACT_OLD_ROWS: &str = concat!(
    "UPDATE aurora_telemetry.usage_rollups AS r SET
        generations    = r.generations - d.generations,
        successful     = r.successful - d.successful,
        total_cost     = r.total_cost - d.total_cost,
        total_time_ms  = r.total_time_ms - d.total_time_ms,
        latency_sketch = aurora_telemetry.sketch_subtract(r.latency_sketch, d.latency_sketch)
       FROM (",
    deltas_from!("aurora_old_rows"),
    ") d
      WHERE r.user_id = d.user_id AND r.level = d.level
        AND r.bucket_start = d.bucket_start AND r.generator = d.generator"
);

/// Buckets whose last row went away are removed, so an empty bucket never shows up as a
/// generator with zero calls.
const DROP_EMPTY_BUCKETS: &str = "DELETE FROM aurora_telemetry.usage_rollups r
      WHERE r.generations = 0
        AND r.user_id IN (SELECT o.user_id FROM aurora_old_rows o)";

#[pg_trigger]
fn maintain_usage_rollups<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    maintain(trigger).or_report();
    Ok(None)
}

fn maintain(trigger: &PgTrigger<'_>) -> errors::Result<()> {
    let operation = trigger.op().map_err(|_| TelemetryError::WrongTriggerUse {
        function: "maintain_usage_rollups",
        expected: "AFTER ... FOR EACH STATEMENT",
    })?;
    let statements: &[&str] = match operation {
        PgTriggerOperation::Insert => &[STAGE_NEW_ROWS],
        // Rows being removed may have been inserted earlier in this transaction: apply what is
        // staged first, so that there is something to subtract them from.
        PgTriggerOperation::Delete => &[APPLY_STAGED, SUBTRACT_OLD_ROWS, DROP_EMPTY_BUCKETS],
        PgTriggerOperation::Update => {
            &[APPLY_STAGED, SUBTRACT_OLD_ROWS, DROP_EMPTY_BUCKETS, STAGE_NEW_ROWS]
        }
        PgTriggerOperation::Truncate => {
            &["TRUNCATE aurora_telemetry.usage_rollups, aurora_telemetry.pending_usage_deltas"]
        }
    };
    Spi::connect_mut(|client| {
        // Makes this trigger's transition tables visible to the queries below by name.
        // SAFETY: the trigger data outlives this SPI connection; SPI only reads it.
        let registered = unsafe {
            pg_sys::SPI_register_trigger_data(
                trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData,
            )
        };
        if registered < 0 {
            return Err(TelemetryError::Internal("could not register the trigger's transition tables"));
        }
        for statement in statements {
            client.update(*statement, None, &[])?;
        }
        Ok(())
    })
}

/// Deferred (INITIALLY DEFERRED) row trigger on `pending_usage_deltas`: its first firing at
/// commit applies all staged deltas; the later firings of the same commit find none left.
#[pg_trigger]
fn apply_pending_usage_deltas<'a>(
    _trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    Spi::connect_mut(|client| client.update(APPLY_STAGED, None, &[]).map(|_| ()))
        .map_err(TelemetryError::from)
        .or_report();
    Ok(None)
}
