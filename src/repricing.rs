//! Repricing stored rows after a catalog fix: `public.reprice_generation_logs(since, until)`.
//!
//! Costs are recomputed from the price in force at each row's `created_at` and written back
//! with one UPDATE; the rollup triggers subtract the old costs and add the new ones in the
//! same statement, so statistics stay exact. Administrators only (enforced by grants).

use crate::errors::{OrReport, Result, TelemetryError};
use crate::metadata::{metered_fields, usage_from_row};
use crate::pricing::{self, to_decimal, to_numeric};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};

const ROWS_IN_RANGE: &str = concat!(
    "SELECT id, generator, time_ms, success, created_at, cost, ",
    metered_fields!("metadata"),
    " FROM public.generation_logs
     WHERE created_at >= $1 AND created_at < $2"
);

const WRITE_COSTS: &str = "
    UPDATE public.generation_logs g
       SET cost = u.cost
      FROM unnest($1::uuid[], $2::numeric[]) AS u(id, cost)
     WHERE g.id = u.id";

#[pg_extern(sql = false)]
fn reprice_generation_logs(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> i64 {
    reprice(since, until).or_report()
}

fn reprice(since: Option<TimestampWithTimeZone>, until: Option<TimestampWithTimeZone>) -> Result<i64> {
    let since = since.ok_or(TelemetryError::NullArgument("since"))?;
    let until = until.ok_or(TelemetryError::NullArgument("until"))?;
    if since.into_inner() > until.into_inner() {
        return Err(TelemetryError::InvalidArgument("since must not be later than until".to_owned()));
    }
    let book = pricing::PriceBook::load()?;
    Spi::connect_mut(|client| {
        let rows = client.select(ROWS_IN_RANGE, None, &[since.into(), until.into()])?;
        let (mut ids, mut costs): (Vec<Uuid>, Vec<AnyNumeric>) = (Vec::new(), Vec::new());
        for row in rows {
            let id = row.get::<Uuid>(1)?.ok_or(TelemetryError::Internal("row without id"))?;
            let generator = row.get::<String>(2)?.unwrap_or_default();
            let time_ms = row.get::<i32>(3)?.unwrap_or(0);
            let success = row.get::<bool>(4)?.unwrap_or(true);
            let created_at = row.get::<TimestampWithTimeZone>(5)?
                .ok_or(TelemetryError::Internal("row without created_at"))?;
            let stored = row.get::<AnyNumeric>(6)?.map(|n| to_decimal(&n)).transpose()?;

            let usage = usage_from_row(time_ms, &row, 7)?;
            let cost = book.price_at(&generator, created_at)?.cost(&usage, success)?;
            if stored != Some(cost) {
                ids.push(id);
                costs.push(to_numeric(cost)?);
            }
        }
        let changed = ids.len() as i64;
        if changed > 0 {
            client.update(WRITE_COSTS, None, &[ids.into(), costs.into()])?;
        }
        Ok(changed)
    })
}
