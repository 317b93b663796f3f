//! Budgets: per-user daily and monthly cost limits, `public.check_budget`, and the hard limit
//! that makes `log_generation` refuse calls once a budget is spent.
//!
//! Spend is read from `spend_totals` (one row per user and UTC day or month, kept at commit)
//! plus this transaction's own staged deltas: O(1), however long the history.

use crate::{access, plans};
use crate::errors::{OrReport, Result, TelemetryError};
use crate::metadata::{self, Jsonb};
use crate::pricing::{self, to_decimal, to_numeric, Usage};
use crate::catalog_cache;
use crate::settings::Settings;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};
use rust_decimal::Decimal;

const SPEND_NOW: &str = "
    SELECT COALESCE(pg_catalog.sum(s.total_cost) FILTER (WHERE s.period = 'day'), 0),
           COALESCE(pg_catalog.sum(s.total_cost) FILTER (WHERE s.period = 'month'), 0)
      FROM (SELECT t.period, t.total_cost
              FROM aurora_telemetry.spend_totals t
             WHERE t.user_id = $1
               AND ((t.period = 'day' AND t.period_start = pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC'))
                 OR (t.period = 'month' AND t.period_start = pg_catalog.date_trunc('month', pg_catalog.now(), 'UTC')))
            UNION ALL
            SELECT p.level, p.total_cost
              FROM aurora_telemetry.pending_usage_deltas p
             WHERE p.user_id = $1
               AND ((p.level = 'day' AND p.bucket_start = pg_catalog.date_trunc('day', pg_catalog.now(), 'UTC'))
                 OR (p.level = 'month' AND p.bucket_start = pg_catalog.date_trunc('month', pg_catalog.now(), 'UTC')))
           ) s";

const BUDGET_OF: &str = "
    SELECT daily_limit, monthly_limit, hard_limit FROM aurora_telemetry.budgets WHERE user_id = $1";

/// A user's limits, with the global thresholds filled in where the budget has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub daily: Option<Decimal>,
    pub monthly: Option<Decimal>,
    pub hard: bool,
}

impl Limits {
    pub fn of(user_id: Uuid, settings: &Settings) -> Result<Self> {
        let (daily, monthly, hard) = Spi::connect(|client| -> Result<_> {
            let rows = plans::select(client, BUDGET_OF, &[user_id.into()])?;
            match rows.into_iter().next() {
                Some(row) => Ok((
                    row.get::<AnyNumeric>(1)?.map(|n| to_decimal(&n)).transpose()?,
                    row.get::<AnyNumeric>(2)?.map(|n| to_decimal(&n)).transpose()?,
                    row.get::<bool>(3)?.unwrap_or(false),
                )),
                None => Ok((None, None, false)),
            }
        })?;
        Ok(Limits {
            daily: daily.or_else(|| settings.daily_cost_threshold()),
            monthly: monthly.or_else(|| settings.monthly_cost_threshold()),
            hard,
        })
    }
}

/// What a user has spent in the current UTC day and month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spend {
    pub daily: Decimal,
    pub monthly: Decimal,
}

impl Spend {
    pub fn of(user_id: Uuid) -> Result<Self> {
        let (daily, monthly) = Spi::connect(|client| -> Result<_> {
            let rows = plans::select(client, SPEND_NOW, &[user_id.into()])?;
            let row = rows.first();
            Ok((row.get::<AnyNumeric>(1)?, row.get::<AnyNumeric>(2)?))
        })?;
        let decimal = |n: Option<AnyNumeric>| n.map(|n| to_decimal(&n)).transpose().map(Option::unwrap_or_default);
        Ok(Spend { daily: decimal(daily)?, monthly: decimal(monthly)? })
    }
}

fn remaining(limit: Option<Decimal>, spent: Decimal) -> Option<Decimal> {
    limit.map(|limit| (limit - spent).max(Decimal::ZERO))
}

fn fits(limit: Option<Decimal>, spent: Decimal, next: Decimal) -> bool {
    limit.is_none_or(|limit| spent + next <= limit)
}

/// Refuse a call that costs something once one of the user's hard limits is reached.
pub fn enforce_hard_limit(
    user_id: Uuid,
    generator: &str,
    time_ms: i32,
    success: bool,
    metadata: Option<Jsonb>,
) -> Result<()> {
    let limits = Limits::of(user_id, &catalog_cache::get()?.settings)?;
    if !limits.hard {
        return Ok(());
    }
    let usage = metadata::usage_of(time_ms, metadata)?;
    if pricing::price_at(generator, None)?.cost(&usage, success)?.is_zero() {
        return Ok(());
    }
    let spend = Spend::of(user_id)?;
    for (period, limit, spent) in [("daily", limits.daily, spend.daily), ("monthly", limits.monthly, spend.monthly)] {
        if let Some(limit) = limit {
            if spent >= limit {
                return Err(TelemetryError::BudgetExhausted {
                    period,
                    spent: spent.normalize().to_string(),
                    limit: limit.normalize().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `public.check_budget(user_id uuid default auth.uid(), generator text default null)`
#[pg_extern(sql = false)]
fn check_budget(
    user_id: Option<Uuid>,
    generator: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(within_budget, bool),
        name!(daily_spent, AnyNumeric),
        name!(daily_limit, Option<AnyNumeric>),
        name!(daily_remaining, Option<AnyNumeric>),
        name!(monthly_spent, AnyNumeric),
        name!(monthly_limit, Option<AnyNumeric>),
        name!(monthly_remaining, Option<AnyNumeric>),
        name!(hard_limit, bool),
        name!(next_call_cost, Option<AnyNumeric>),
    ),
> {
    let row = (|| -> Result<_> {
        let user_id = access::readable_user(user_id)?;
        let limits = Limits::of(user_id, &catalog_cache::get()?.settings)?;
        let spend = Spend::of(user_id)?;
        let next = match generator {
            Some(generator) => Some(pricing::price_at(generator, None)?.cost(&Usage::default(), true)?),
            None => None,
        };
        let next_cost = next.unwrap_or_default();
        let within = fits(limits.daily, spend.daily, next_cost) && fits(limits.monthly, spend.monthly, next_cost);
        let numeric = |d: Option<Decimal>| d.map(to_numeric).transpose();
        Ok((
            within,
            to_numeric(spend.daily)?,
            numeric(limits.daily)?,
            numeric(remaining(limits.daily, spend.daily))?,
            to_numeric(spend.monthly)?,
            numeric(limits.monthly)?,
            numeric(remaining(limits.monthly, spend.monthly))?,
            limits.hard,
            numeric(next)?,
        ))
    })()
    .or_report();
    TableIterator::once(row)
}
