//! Usage figures across a time range for one user or for all users, served from the rollups:
//! the administrators' analytics (`admin_top_users_by_cost`, `admin_daily_totals`,
//! `admin_generator_performance`), `billing_usage`, and the data behind the dashboard.
//!
//! Like the per-user statistics, every answer reads the pieces `ranges::plan` picks (whole
//! rollup buckets inside the range, raw rows only at its ragged edges), so its figures equal
//! plain SQL over `generation_logs` and its cost does not grow with the history. Functions run
//! as their caller: row-level security applies underneath, and the administrator check comes
//! first, so an ordinary user gets a permission error, never a partial answer.

use crate::access;
use crate::errors::{OrReport, Result, TelemetryError};
use crate::pricing::{to_decimal, to_numeric};
use crate::ranges::{self, Level};
use crate::sketch::LatencySketch;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;

/// The rollup rows and raw edge rows of the planned pieces, for one user (`$1`) or all
/// (`$1` NULL). Columns: bucket (`date_trunc($5, ...)`, or NULL when `$5` is NULL), user_id,
/// generator, generations, successful, total_cost, total_time_ms, latency_sketch.
/// `$1::uuid IS NULL` folds away when planning (SPI plans one-shot queries with the values).
macro_rules! pieces_sql {
    () => {
        "SELECT CASE WHEN $5::text IS NULL THEN NULL
                     ELSE pg_catalog.date_trunc($5, r.bucket_start, 'UTC') END AS bucket,
                r.user_id, r.generator, r.generations, r.successful, r.total_cost, r.total_time_ms,
                r.latency_sketch
           FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
           JOIN aurora_telemetry.usage_rollups_current r
             ON r.level = p.source AND r.bucket_start >= p.lo AND r.bucket_start < p.hi
            AND ($1::uuid IS NULL OR r.user_id = $1)
          WHERE r.generations > 0
         UNION ALL
         SELECT CASE WHEN $5::text IS NULL THEN NULL
                     ELSE pg_catalog.date_trunc($5, g.created_at, 'UTC') END,
                g.user_id, g.generator, pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE g.success),
                COALESCE(pg_catalog.sum(g.cost), 0), pg_catalog.sum(g.time_ms),
                aurora_telemetry.latency_sketch(pg_catalog.array_agg(g.time_ms))
           FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
           JOIN public.generation_logs g
             ON p.source = 'raw' AND g.created_at >= p.lo AND g.created_at < p.hi
            AND ($1::uuid IS NULL OR g.user_id = $1)
          GROUP BY 1, 2, 3"
    };
}

/// Per generator: totals and the merged latency sketch.
const BY_GENERATOR_SQL: &str = concat!(
    "SELECT s.generator, pg_catalog.sum(s.generations)::bigint, pg_catalog.sum(s.successful)::bigint,
            pg_catalog.sum(s.total_cost), pg_catalog.sum(s.total_time_ms)::bigint,
            aurora_telemetry.sketch_union(s.latency_sketch)
       FROM (",
    pieces_sql!(),
    ") s GROUP BY s.generator ORDER BY s.generator"
);

/// Per bucket and generator, and per bucket over all generators (generator NULL), with the
/// number of distinct users that had calls.
const BY_BUCKET_SQL: &str = concat!(
    "SELECT s.bucket, s.generator, pg_catalog.sum(s.generations)::bigint,
            pg_catalog.sum(s.successful)::bigint, pg_catalog.sum(s.total_cost),
            pg_catalog.sum(s.total_time_ms)::bigint, pg_catalog.count(DISTINCT s.user_id)
       FROM (",
    pieces_sql!(),
    ") s GROUP BY GROUPING SETS ((s.bucket, s.generator), (s.bucket))
      ORDER BY s.bucket, s.generator NULLS FIRST"
);

/// Per user, the biggest spenders first; `$6` rows at most.
const BY_USER_SQL: &str = concat!(
    "SELECT s.user_id, pg_catalog.sum(s.generations)::bigint, pg_catalog.sum(s.successful)::bigint,
            pg_catalog.sum(s.total_cost), pg_catalog.sum(s.total_time_ms)::bigint
       FROM (",
    pieces_sql!(),
    ") s GROUP BY s.user_id
      ORDER BY pg_catalog.sum(s.total_cost) DESC, pg_catalog.sum(s.generations) DESC, s.user_id
      LIMIT $6"
);

/// Call count, successes, cost and total latency of some set of calls.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    pub generations: i64,
    pub successful: i64,
    pub cost: Decimal,
    pub time_ms: i64,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.generations += other.generations;
        self.successful += other.successful;
        self.cost += other.cost;
        self.time_ms += other.time_ms;
    }

    pub fn failed(&self) -> i64 {
        self.generations - self.successful
    }

    /// Mean latency, rounded half away from zero to 2 places (0.00 with no calls), as
    /// `round(avg(time_ms), 2)`.
    pub fn average_time_ms(&self) -> Decimal {
        ratio(Decimal::from(self.time_ms), self.generations, Decimal::ONE)
    }

    /// Percentage of successful calls, 2 places, as the seed's
    /// `ROUND(100.0 * successful / total, 2)`; 0.00 with no calls.
    pub fn success_rate(&self) -> Decimal {
        ratio(Decimal::from(self.successful), self.generations, Decimal::ONE_HUNDRED)
    }
}

fn ratio(numerator: Decimal, count: i64, scale: Decimal) -> Decimal {
    if count == 0 {
        return Decimal::new(0, 2);
    }
    let mut value = (numerator * scale / Decimal::from(count))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    value.rescale(2);
    value
}

/// Whose calls, over which range (Postgres microseconds, `i64::MIN`/`MAX` for unbounded).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub user: Option<Uuid>,
    pub since: i64,
    pub until: i64,
}

impl Scope {
    pub fn new(
        user: Option<Uuid>,
        since: Option<TimestampWithTimeZone>,
        until: Option<TimestampWithTimeZone>,
    ) -> Result<Self> {
        let since = since.map_or(i64::MIN, TimestampWithTimeZone::into_inner);
        let until = until.map_or(i64::MAX, TimestampWithTimeZone::into_inner);
        if since > until {
            return Err(TelemetryError::InvalidArgument("since must not be later than until".to_owned()));
        }
        Ok(Scope { user, since, until })
    }

    /// The five arguments of `pieces_sql!`: user, sources, starts, ends, bucket.
    fn run<T>(
        &self,
        coarsest: Level,
        bucket: Option<&str>,
        sql: &str,
        extra: Option<i64>,
        mut each: impl FnMut(&pgrx::spi::SpiHeapTupleData<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let (sources, starts, ends) = ranges::as_arrays(&ranges::plan(self.since, self.until, coarsest)?)?;
        let bucket = bucket.map(str::to_owned);
        Spi::connect(|client| {
            let rows = match extra {
                None => client.select(
                    sql,
                    None,
                    &[self.user.into(), sources.into(), starts.into(), ends.into(), bucket.into()],
                )?,
                Some(limit) => client.select(
                    sql,
                    None,
                    &[self.user.into(), sources.into(), starts.into(), ends.into(), bucket.into(), limit.into()],
                )?,
            };
            let mut out = Vec::new();
            for row in rows {
                out.push(each(&row)?);
            }
            Ok(out)
        })
    }
}

/// Read (generations, successful, cost, time) from four columns starting at `first`.
fn totals_from(row: &pgrx::spi::SpiHeapTupleData<'_>, first: usize) -> Result<Totals> {
    Ok(Totals {
        generations: row.get::<i64>(first)?.unwrap_or(0),
        successful: row.get::<i64>(first + 1)?.unwrap_or(0),
        cost: row.get::<AnyNumeric>(first + 2)?.map(|n| to_decimal(&n)).transpose()?.unwrap_or_default(),
        time_ms: row.get::<i64>(first + 3)?.unwrap_or(0),
    })
}

/// One generator's figures over a scope.
pub struct GeneratorFigures {
    pub generator: String,
    pub totals: Totals,
    pub sketch: LatencySketch,
}

impl GeneratorFigures {
    /// A latency percentile from the sketch (within 1% of the exact value at that rank),
    /// rounded to 3 places; None with no calls.
    pub fn percentile(&self, q: f64) -> Result<Option<Decimal>> {
        self.sketch
            .quantile(q)
            .map(|v| {
                Decimal::from_f64_retain(v)
                    .map(|d| d.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero))
                    .ok_or(TelemetryError::Internal("latency estimate out of range"))
            })
            .transpose()
    }
}

pub fn by_generator(scope: &Scope) -> Result<Vec<GeneratorFigures>> {
    scope.run(Level::Month, None, BY_GENERATOR_SQL, None, |row| {
        let sketch = match row.get::<&[u8]>(6)? {
            Some(bytes) => LatencySketch::from_bytes(bytes)?,
            None => LatencySketch::new(),
        };
        Ok(GeneratorFigures {
            generator: row.get::<String>(1)?.unwrap_or_default(),
            totals: totals_from(row, 2)?,
            sketch,
        })
    })
}

/// Figures of one bucket, for one generator or (generator None) all of them.
pub struct BucketFigures {
    pub bucket: TimestampWithTimeZone,
    pub generator: Option<String>,
    pub totals: Totals,
    pub users: i64,
}

/// `bucket` is `hour`, `day`, `week` or `month` (UTC).
pub fn by_bucket(scope: &Scope, bucket: &str) -> Result<Vec<BucketFigures>> {
    let coarsest = match bucket {
        "hour" => Level::Hour,
        "day" | "week" => Level::Day,
        "month" => Level::Month,
        _ => return Err(TelemetryError::Internal("unknown bucket")),
    };
    scope.run(coarsest, Some(bucket), BY_BUCKET_SQL, None, |row| {
        Ok(BucketFigures {
            bucket: row.get::<TimestampWithTimeZone>(1)?.ok_or(TelemetryError::Internal("bucket without a start"))?,
            generator: row.get::<String>(2)?,
            totals: totals_from(row, 3)?,
            users: row.get::<i64>(7)?.unwrap_or(0),
        })
    })
}

pub struct UserFigures {
    pub user_id: Uuid,
    pub totals: Totals,
}

/// The `top` users with the highest cost in the scope (ties: more calls, then user id).
pub fn top_users(scope: &Scope, top: i64) -> Result<Vec<UserFigures>> {
    scope.run(Level::Month, None, BY_USER_SQL, Some(top), |row| {
        Ok(UserFigures {
            user_id: row.get::<Uuid>(1)?.ok_or(TelemetryError::Internal("rollup row without a user"))?,
            totals: totals_from(row, 2)?,
        })
    })
}

fn numeric(d: Decimal) -> Result<AnyNumeric> {
    to_numeric(d)
}

fn optional_numeric(d: Option<Decimal>) -> Result<Option<AnyNumeric>> {
    d.map(to_numeric).transpose()
}

/// `public.admin_top_users_by_cost(since, until, top)`: administrators only.
#[pg_extern(sql = false)]
fn admin_top_users_by_cost(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
    top: Option<i32>,
) -> TableIterator<
    'static,
    (
        name!(rank, i64),
        name!(user_id, Uuid),
        name!(total_generations, i64),
        name!(successful_generations, i64),
        name!(failed_generations, i64),
        name!(total_cost, AnyNumeric),
        name!(average_time_ms, AnyNumeric),
    ),
> {
    let rows = (|| -> Result<_> {
        access::require_admin("admin_top_users_by_cost")?;
        let top = top.ok_or(TelemetryError::NullArgument("top"))?;
        if !(1..=10_000).contains(&top) {
            return Err(TelemetryError::InvalidArgument(format!("top must be between 1 and 10000, got {top}")));
        }
        let scope = Scope::new(None, since, until)?;
        let mut out = Vec::new();
        for (i, user) in top_users(&scope, i64::from(top))?.into_iter().enumerate() {
            let t = &user.totals;
            out.push((
                i64::try_from(i).unwrap_or(i64::MAX) + 1,
                user.user_id,
                t.generations,
                t.successful,
                t.failed(),
                numeric(t.cost)?,
                numeric(t.average_time_ms())?,
            ));
        }
        Ok(out)
    })()
    .or_report();
    TableIterator::new(rows)
}

/// `public.admin_daily_totals(since, until)`: one row per UTC day with calls, all users.
#[pg_extern(sql = false)]
fn admin_daily_totals(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> TableIterator<
    'static,
    (
        name!(day, pgrx::datum::Date),
        name!(total_generations, i64),
        name!(successful_generations, i64),
        name!(failed_generations, i64),
        name!(total_cost, AnyNumeric),
        name!(average_time_ms, AnyNumeric),
        name!(active_users, i64),
    ),
> {
    let rows = (|| -> Result<_> {
        access::require_admin("admin_daily_totals")?;
        let scope = Scope::new(None, since, until)?;
        let mut out = Vec::new();
        for b in by_bucket(&scope, "day")?.into_iter().filter(|b| b.generator.is_none()) {
            let utc = b.bucket.to_utc();
            let day = pgrx::datum::Date::new(utc.year(), utc.month(), utc.day())
                .map_err(|_| TelemetryError::Internal("day out of range"))?;
            let t = &b.totals;
            out.push((day, t.generations, t.successful, t.failed(), numeric(t.cost)?, numeric(t.average_time_ms())?, b.users));
        }
        Ok(out)
    })()
    .or_report();
    TableIterator::new(rows)
}

/// `public.admin_generator_performance(since, until)`: per generator, all users.
#[pg_extern(sql = false)]
fn admin_generator_performance(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> TableIterator<
    'static,
    (
        name!(generator, String),
        name!(total, i64),
        name!(successful, i64),
        name!(failed, i64),
        name!(success_rate, AnyNumeric),
        name!(total_cost, AnyNumeric),
        name!(average_time_ms, AnyNumeric),
        name!(p50_time_ms, Option<AnyNumeric>),
        name!(p95_time_ms, Option<AnyNumeric>),
        name!(p99_time_ms, Option<AnyNumeric>),
    ),
> {
    let rows = (|| -> Result<_> {
        access::require_admin("admin_generator_performance")?;
        let scope = Scope::new(None, since, until)?;
        let mut out = Vec::new();
        for g in by_generator(&scope)? {
            let t = &g.totals;
            out.push((
                g.generator.clone(),
                t.generations,
                t.successful,
                t.failed(),
                numeric(t.success_rate())?,
                numeric(t.cost)?,
                numeric(t.average_time_ms())?,
                optional_numeric(g.percentile(0.50)?)?,
                optional_numeric(g.percentile(0.95)?)?,
                optional_numeric(g.percentile(0.99)?)?,
            ));
        }
        Ok(out)
    })()
    .or_report();
    TableIterator::new(rows)
}

/// Rows of `billing_usage`: per user and generator over whole UTC days, with a key that is
/// the same every time the same period is exported.
const BILLING_SQL: &str = concat!(
    "SELECT s.user_id, s.generator, pg_catalog.sum(s.generations)::bigint, pg_catalog.sum(s.total_cost),
            pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
                'aurora_telemetry/' || s.user_id::text || '/' || s.generator || '/'
                || pg_catalog.to_char($6::date, 'YYYY-MM-DD') || '/' || pg_catalog.to_char($7::date, 'YYYY-MM-DD'),
                'UTF8')), 'hex'),
            EXTRACT(epoch FROM $8::timestamptz)::bigint
       FROM (",
    pieces_sql!(),
    ") s GROUP BY s.user_id, s.generator
      HAVING pg_catalog.sum(s.generations) > 0
      ORDER BY s.user_id, s.generator"
);

/// Stripe meter events are named by the meter; this is the name the README suggests.
const METER_EVENT_NAME: &str = "aurora_generation_cost";

/// `public.billing_usage(period_start date, period_end date)`: administrators only.
#[pg_extern(sql = false)]
fn billing_usage(
    period_start: Option<pgrx::datum::Date>,
    period_end: Option<pgrx::datum::Date>,
) -> TableIterator<
    'static,
    (
        name!(user_id, Uuid),
        name!(generator, String),
        name!(quantity, i64),
        name!(amount, AnyNumeric),
        name!(amount_micro_usd, i64),
        name!(idempotency_key, String),
        name!(meter_event, JsonB),
    ),
> {
    let rows = (|| -> Result<_> {
        access::require_admin("billing_usage")?;
        let start = period_start.ok_or(TelemetryError::NullArgument("period_start"))?;
        let end = period_end.ok_or(TelemetryError::NullArgument("period_end"))?;
        if !(start.is_finite() && end.is_finite()) || start >= end {
            return Err(TelemetryError::InvalidArgument(
                "period_end must be a later date than period_start (the period is [period_start, period_end), in UTC)"
                    .to_owned(),
            ));
        }
        let utc_midnight = |d: pgrx::datum::Date| -> Result<TimestampWithTimeZone> {
            Spi::get_one_with_args::<TimestampWithTimeZone>("SELECT $1::timestamp AT TIME ZONE 'UTC'", &[d.into()])?
                .ok_or(TelemetryError::Internal("date without a timestamp"))
        };
        let (since, until) = (utc_midnight(start)?, utc_midnight(end)?);
        let pieces = ranges::plan(since.into_inner(), until.into_inner(), Level::Month)?;
        let (sources, starts, ends) = ranges::as_arrays(&pieces)?;
        // The meter event's timestamp: the last second of the period.
        let last_second = TimestampWithTimeZone::try_from(until.into_inner() - 1_000_000)
            .map_err(|_| TelemetryError::Internal("timestamp out of range"))?;
        Spi::connect(|client| {
            let rows = client.select(
                BILLING_SQL,
                None,
                &[
                    Option::<Uuid>::None.into(),
                    sources.into(),
                    starts.into(),
                    ends.into(),
                    Option::<String>::None.into(),
                    start.into(),
                    end.into(),
                    last_second.into(),
                ],
            );
            let mut out = Vec::new();
            for row in rows? {
                let user_id = row.get::<Uuid>(1)?.ok_or(TelemetryError::Internal("rollup row without a user"))?;
                let generator = row.get::<String>(2)?.unwrap_or_default();
                let quantity = row.get::<i64>(3)?.unwrap_or(0);
                let amount = row.get::<AnyNumeric>(4)?.map(|n| to_decimal(&n)).transpose()?.unwrap_or_default();
                let key = row.get::<String>(5)?.ok_or(TelemetryError::Internal("no idempotency key"))?;
                let timestamp = row.get::<i64>(6)?.unwrap_or(0);
                let micro_exact = amount * Decimal::from(1_000_000);
                let micro = Some(micro_exact)
                    .filter(|m| m.fract().is_zero())
                    .and_then(|m| m.to_i64())
                    .ok_or_else(|| TelemetryError::NotRepresentable(amount.to_string()))?;
                let event = json!({
                    "event_name": METER_EVENT_NAME,
                    "identifier": key,
                    "timestamp": timestamp,
                    "payload": {
                        "user_id": user_id.to_string(),
                        "generator": generator,
                        "value": micro.to_string(),
                    },
                });
                out.push((user_id, generator, quantity, numeric(amount)?, micro, key, JsonB(event)));
            }
            Ok(out)
        })
    })()
    .or_report();
    TableIterator::new(rows)
}
