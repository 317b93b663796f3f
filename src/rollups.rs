//! Usage rollups: per user, generator and UTC hour, day and month, kept exact in the same
//! transaction as every change to `public.generation_logs`.
//!
//! Statement-level AFTER triggers see all rows of one INSERT, UPDATE, DELETE or COPY at once
//! through transition tables, aggregate them into one delta per rollup key, and apply the
//! deltas with one statement: an upsert (`ON CONFLICT DO UPDATE` adds atomically under
//! concurrency) for new rows, a subtraction for old rows. Keys are applied in sorted order so
//! that two multi-user statements never lock the same rows in opposite orders.

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

const ADD_NEW_ROWS: &str = concat!(
    "INSERT INTO aurora_telemetry.usage_rollups AS r
        (user_id, level, bucket_start, generator, generations, successful, total_cost, total_time_ms, latency_sketch)
     SELECT * FROM (",
    deltas_from!("aurora_new_rows"),
    ") d
     ORDER BY d.user_id, d.level, d.bucket_start, d.generator
     ON CONFLICT (user_id, level, bucket_start, generator) DO UPDATE SET
        generations    = r.generations + EXCLUDED.generations,
        successful     = r.successful + EXCLUDED.successful,
        total_cost     = r.total_cost + EXCLUDED.total_cost,
        total_time_ms  = r.total_time_ms + EXCLUDED.total_time_ms,
        latency_sketch = aurora_telemetry.sketch_merge(r.latency_sketch, EXCLUDED.latency_sketch)"
);

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
        PgTriggerOperation::Insert => &[ADD_NEW_ROWS],
        PgTriggerOperation::Delete => &[SUBTRACT_OLD_ROWS, DROP_EMPTY_BUCKETS],
        PgTriggerOperation::Update => &[SUBTRACT_OLD_ROWS, ADD_NEW_ROWS, DROP_EMPTY_BUCKETS],
        PgTriggerOperation::Truncate => &["TRUNCATE aurora_telemetry.usage_rollups"],
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
