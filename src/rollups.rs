//! Usage rollups: per user, generator and UTC hour, day and month, kept exact in the same
//! transaction as every change to `public.generation_logs`, together with the figures that
//! alerts and budgets read (`spend_totals`, `generator_hourly`).
//!
//! Statement-level AFTER triggers see all rows of one INSERT, UPDATE, DELETE or COPY at once
//! through transition tables and aggregate them into one delta per rollup key.
//!
//! New rows (the hot path) are not applied at once: their deltas are staged in
//! `pending_usage_deltas`, and a deferred trigger applies everything the transaction staged
//! just before it commits ([`flush`]), with upserts sorted by key (`ON CONFLICT DO UPDATE`
//! adds atomically under concurrency), always in the same table order: spend totals,
//! generator counters, rollups. Shared rows are thus locked only during commit and always in
//! the same order, so writers neither deadlock nor wait on each other for long, however many
//! statements and users a transaction has. Old rows (deletes, updates: administrative and
//! rare) are subtracted immediately, after applying what is staged.

use crate::errors::{self, OrReport, TelemetryError};
use crate::pricing::to_decimal;
use crate::{alerts, plans, staged_rows};
use pgrx::prelude::*;
use pgrx::spi::SpiTupleTable;
use pgrx::{AnyNumeric, Uuid};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

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

/// Stage the deltas of `$rows`; `$new_calls` says whether they are new calls (an INSERT) or
/// re-added rows of an UPDATE, which the per-generator call counters must not count again.
macro_rules! stage {
    ($rows:literal, $new_calls:literal) => {
        concat!(
            "INSERT INTO aurora_telemetry.pending_usage_deltas
                (user_id, level, bucket_start, generator, generations, successful, total_cost,
                 total_time_ms, latency_sketch, new_calls)
             SELECT d.*, ",
            $new_calls,
            " FROM (",
            deltas_from!($rows),
            ") d RETURNING ctid"
        )
    };
}

/// The columns a flush reads of the rows it claims.
macro_rules! claim {
    ($filter:literal) => {
        concat!(
            "SELECT p.ctid, p.user_id, p.level, p.bucket_start, p.generator, p.generations, p.successful,
                    p.total_cost, p.new_calls
               FROM aurora_telemetry.pending_usage_deltas p ",
            $filter,
            " FOR UPDATE SKIP LOCKED"
        )
    };
}

/// Take this transaction's staged rows, found by the ctids their staging returned: the
/// staging table holds many dead rows between vacuums, and a flush must not scan them.
const CLAIM_OWN: &str = claim!("WHERE p.ctid = ANY ($1)");

/// Take every staged row no other flush holds right now: this transaction's own and those
/// that earlier transactions committed without applying (see [`apply_staged_and_alert`]).
/// A scan of the whole staging table, so it runs now and then, not at every commit
/// (`staged_rows::sweep_due`).
const CLAIM_ALL: &str = claim!("");

const STAGE_INSERTED_ROWS: &str = stage!("aurora_new_rows", "true");
const STAGE_UPDATED_ROWS: &str = stage!("aurora_new_rows", "false");

const APPLY_SPEND: &str = "
    INSERT INTO aurora_telemetry.spend_totals AS s (user_id, period, period_start, total_cost, generations)
    SELECT user_id, level, bucket_start, pg_catalog.sum(total_cost), pg_catalog.sum(generations)
      FROM aurora_telemetry.pending_usage_deltas
     WHERE ctid = ANY ($1) AND level IN ('day', 'month')
     GROUP BY user_id, level, bucket_start
     ORDER BY user_id, level, bucket_start
    ON CONFLICT (user_id, period, period_start) DO UPDATE SET
        total_cost  = s.total_cost + EXCLUDED.total_cost,
        generations = s.generations + EXCLUDED.generations
    RETURNING s.user_id, s.period, s.period_start, s.total_cost";

/// Counters per generator and hour across all users, in this backend's slot.
const APPLY_GENERATOR_HOURS: &str = "
    INSERT INTO aurora_telemetry.generator_hourly AS g
        (generator, hour_start, slot, generations, failed, total_time_ms, latency_sketch)
    SELECT generator, bucket_start, (pg_catalog.pg_backend_pid() % 8)::smallint,
           pg_catalog.sum(generations), pg_catalog.sum(generations - successful),
           pg_catalog.sum(total_time_ms), aurora_telemetry.sketch_union(latency_sketch)
      FROM aurora_telemetry.pending_usage_deltas
     WHERE ctid = ANY ($1) AND level = 'hour' AND new_calls
     GROUP BY generator, bucket_start
     ORDER BY generator, bucket_start
    ON CONFLICT (generator, hour_start, slot) DO UPDATE SET
        generations    = g.generations + EXCLUDED.generations,
        failed         = g.failed + EXCLUDED.failed,
        total_time_ms  = g.total_time_ms + EXCLUDED.total_time_ms,
        latency_sketch = aurora_telemetry.sketch_merge(g.latency_sketch, EXCLUDED.latency_sketch)";

/// Everything claimed, in one statement sorted by key; the claimed rows go away.
const APPLY_ROLLUPS: &str = "
    WITH staged AS (
        DELETE FROM aurora_telemetry.pending_usage_deltas WHERE ctid = ANY ($1)
        RETURNING *)
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

const SUBTRACT_OLD_SPEND: &str = "
    UPDATE aurora_telemetry.spend_totals AS s SET
        total_cost  = s.total_cost - d.total_cost,
        generations = s.generations - d.generations
      FROM (SELECT t.user_id, b.period, b.period_start,
                   COALESCE(pg_catalog.sum(t.cost), 0) AS total_cost, pg_catalog.count(*) AS generations
              FROM aurora_old_rows t
             CROSS JOIN LATERAL (VALUES
                    ('day',   pg_catalog.date_trunc('day',   t.created_at, 'UTC')),
                    ('month', pg_catalog.date_trunc('month', t.created_at, 'UTC'))
             ) AS b(period, period_start)
             GROUP BY t.user_id, b.period, b.period_start) d
     WHERE s.user_id = d.user_id AND s.period = d.period AND s.period_start = d.period_start";

const SUBTRACT_OLD_ROLLUPS: &str = concat!(
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
const DROP_EMPTY: [&str; 2] = [
    "DELETE FROM aurora_telemetry.spend_totals s
      WHERE s.generations = 0 AND s.user_id IN (SELECT o.user_id FROM aurora_old_rows o)",
    "DELETE FROM aurora_telemetry.usage_rollups r
      WHERE r.generations = 0 AND r.user_id IN (SELECT o.user_id FROM aurora_old_rows o)",
];

const TRUNCATE_DERIVED: &str = "TRUNCATE aurora_telemetry.usage_rollups, aurora_telemetry.pending_usage_deltas,
    aurora_telemetry.spend_totals, aurora_telemetry.generator_hourly,
    aurora_telemetry.generator_baselines, aurora_telemetry.user_baselines";

/// A user's spend in one period, as it changed at this commit.
#[derive(Debug, Clone)]
pub struct SpendChange {
    pub user_id: Uuid,
    pub period: String,
    pub period_start: TimestampWithTimeZone,
    pub before: Decimal,
    pub after: Decimal,
}

/// A user, generator and hour that received new calls at this commit, and how many.
#[derive(Debug, Clone)]
pub struct NewCalls {
    pub user_id: Uuid,
    pub generator: String,
    pub hour_start: TimestampWithTimeZone,
    pub generations: i64,
    pub successful: i64,
    pub cost: Decimal,
}

/// What one flush applied, for the alert checks.
pub struct Flushed {
    pub spend: Vec<SpendChange>,
    pub calls: Vec<NewCalls>,
}

/// Per (user, generator, hour): calls, successful calls and cost.
type CallTotals = BTreeMap<(Uuid, String, i64), (i64, i64, Decimal)>;
/// Per (user, period, period start): cost added.
type SpendAdded = BTreeMap<(Uuid, String, i64), Decimal>;

/// The claimed rows' ctids, and their sums as the alert checks need them.
fn summarize_claimed(claimed: SpiTupleTable<'_>) -> errors::Result<(Vec<pg_sys::ItemPointerData>, CallTotals, SpendAdded)> {
    let (mut ctids, mut calls, mut spend) = (Vec::new(), CallTotals::new(), SpendAdded::new());
    for row in claimed {
        ctids.push(row.get::<pg_sys::ItemPointerData>(1)?.ok_or(TelemetryError::Internal("claimed row without ctid"))?);
        let user_id = row.get::<Uuid>(2)?.ok_or(TelemetryError::Internal("staged row without user"))?;
        let level = row.get::<String>(3)?.unwrap_or_default();
        let bucket = row
            .get::<TimestampWithTimeZone>(4)?
            .ok_or(TelemetryError::Internal("staged row without bucket"))?
            .into_inner();
        let cost = row.get::<AnyNumeric>(8)?.map(|n| to_decimal(&n)).transpose()?.unwrap_or_default();
        match level.as_str() {
            "hour" if row.get::<bool>(9)? == Some(true) => {
                let generator = row.get::<String>(5)?.unwrap_or_default();
                let entry = calls.entry((user_id, generator, bucket)).or_default();
                entry.0 += row.get::<i64>(6)?.unwrap_or(0);
                entry.1 += row.get::<i64>(7)?.unwrap_or(0);
                entry.2 += cost;
            }
            "day" | "month" => *spend.entry((user_id, level, bucket)).or_default() += cost,
            _ => {}
        }
    }
    Ok((ctids, calls, spend))
}

/// Apply everything this transaction staged; `None` when nothing was staged.
pub fn flush() -> errors::Result<Option<Flushed>> {
    let own = staged_rows::take_unapplied();
    Spi::connect_mut(|client| {
        let interval = crate::catalog_cache::get()?.settings.staged_sweep_interval_usecs();
        let claimed = if staged_rows::sweep_due(interval) {
            let claimed = plans::update(client, CLAIM_ALL, &[])?;
            staged_rows::swept();
            claimed
        } else if own.is_empty() {
            return Ok(None);
        } else {
            plans::update(client, CLAIM_OWN, &[own.into()])?
        };
        if claimed.is_empty() {
            return Ok(None);
        }
        let (ctids, call_totals, added) = summarize_claimed(claimed)?;
        let mut calls = Vec::with_capacity(call_totals.len());
        for ((user_id, generator, hour), (generations, successful, cost)) in call_totals {
            let hour_start = TimestampWithTimeZone::try_from(hour)
                .map_err(|_| TelemetryError::Internal("staged hour out of range"))?;
            calls.push(NewCalls { user_id, generator, hour_start, generations, successful, cost });
        }

        let mut spend = Vec::new();
        for row in plans::update(client, APPLY_SPEND, &[ctids.clone().into()])? {
            let user_id = row.get::<Uuid>(1)?.ok_or(TelemetryError::Internal("spend row without user"))?;
            let period = row.get::<String>(2)?.unwrap_or_default();
            let period_start = row
                .get::<TimestampWithTimeZone>(3)?
                .ok_or(TelemetryError::Internal("spend row without period"))?;
            let after = row.get::<AnyNumeric>(4)?.map(|n| to_decimal(&n)).transpose()?.unwrap_or_default();
            let delta = added.get(&(user_id, period.clone(), period_start.into_inner())).copied().unwrap_or_default();
            spend.push(SpendChange { user_id, period, period_start, before: after - delta, after });
        }
        plans::update(client, APPLY_GENERATOR_HOURS, &[ctids.clone().into()])?;
        plans::update(client, APPLY_ROLLUPS, &[ctids.into()])?;
        Ok(Some(Flushed { spend, calls }))
    })
}

#[pg_trigger]
fn maintain_usage_rollups<'a>(
    trigger: &'a PgTrigger<'a>,
) -> std::result::Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    maintain(trigger).or_report();
    Ok(None)
}

fn maintain(trigger: &PgTrigger<'_>) -> errors::Result<()> {
    let operation = trigger.op().map_err(|_| TelemetryError::WrongTriggerUse {
        function: "maintain_usage_rollups",
        expected: "AFTER ... FOR EACH STATEMENT",
    })?;
    // Rows being removed may have been inserted earlier in this transaction: apply what is
    // staged first, so that there is something to subtract them from.
    if matches!(operation, PgTriggerOperation::Delete | PgTriggerOperation::Update) {
        apply_staged_and_alert();
    }
    let statements: &[&str] = match operation {
        PgTriggerOperation::Insert => &[STAGE_INSERTED_ROWS],
        PgTriggerOperation::Delete => &[SUBTRACT_OLD_SPEND, SUBTRACT_OLD_ROLLUPS, DROP_EMPTY[0], DROP_EMPTY[1]],
        PgTriggerOperation::Update => &[
            SUBTRACT_OLD_SPEND,
            SUBTRACT_OLD_ROLLUPS,
            DROP_EMPTY[0],
            DROP_EMPTY[1],
            STAGE_UPDATED_ROWS,
        ],
        PgTriggerOperation::Truncate => &[TRUNCATE_DERIVED],
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
            let rows = plans::update(client, statement, &[])?;
            if matches!(*statement, STAGE_INSERTED_ROWS | STAGE_UPDATED_ROWS) {
                for row in rows {
                    if let Some(ctid) = row.get::<pg_sys::ItemPointerData>(1)? {
                        staged_rows::note(ctid);
                    }
                }
            }
        }
        Ok(())
    })
}

/// Apply the staged deltas, then evaluate alerts on what changed (an error there is
/// reported, never fatal).
///
/// At READ COMMITTED an error applying the deltas fails the transaction: rollups must stay
/// exact. At REPEATABLE READ or SERIALIZABLE, the upserts would fail with a serialization
/// error whenever another transaction changed the same rollup rows after this snapshot was
/// taken; there the attempt runs in a subtransaction, and if it fails the deltas simply stay
/// staged and commit with the rows: statistics and budgets count staged deltas too, and the
/// next flush that can apply them does.
fn apply_staged_and_alert() {
    // SAFETY: reads the current transaction's isolation level.
    let snapshot_isolation = unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32;
    let flushed = if snapshot_isolation {
        let mut applied = None;
        let attempt = crate::subtransaction::run(std::panic::AssertUnwindSafe(|| {
            applied = flush()?;
            Ok(())
        }));
        if attempt.is_err() {
            // This transaction commits its deltas staged.
            staged_rows::leave_unapplied();
        }
        attempt.ok().and(applied)
    } else {
        flush().or_report()
    };
    if let Some(flushed) = flushed {
        alerts::evaluate(&flushed);
    }
}

/// Deferred (INITIALLY DEFERRED) row trigger on `pending_usage_deltas`, one firing per
/// staged row: the first firing at commit applies every staged row, the later ones find
/// nothing left to apply and return at once.
#[pg_trigger]
fn apply_pending_usage_deltas<'a>(
    trigger: &'a PgTrigger<'a>,
) -> std::result::Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    // SAFETY: an AFTER INSERT row trigger's tg_trigtuple is the inserted row.
    if let Some(row) = unsafe { trigger.trigger_data().tg_trigtuple.as_ref() } {
        staged_rows::note(row.t_self);
    }
    if staged_rows::any_unapplied() {
        apply_staged_and_alert();
    }
    Ok(None)
}
