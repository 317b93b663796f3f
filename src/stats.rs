//! Per-user usage statistics and time series (the seed's `GET /api/telemetry/stats` and its
//! daily, weekly and monthly views), served from the rollups.
//!
//! Each answer reads the pieces `ranges::plan` picks: whole rollup buckets inside the range
//! and raw rows only at its ragged edges. Its cost therefore does not grow with the user's
//! history, and its figures equal plain SQL over `generation_logs`.

use crate::{access, plans};
use crate::errors::{OrReport, Result, TelemetryError};
use crate::pricing::{to_decimal, to_numeric};
use crate::ranges::{self, Level};
use crate::sketch::LatencySketch;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};

/// Totals per generator over the planned pieces.
const TOTALS_SQL: &str = "
    SELECT s.generator, pg_catalog.sum(s.generations)::bigint, pg_catalog.sum(s.successful)::bigint,
           pg_catalog.sum(s.total_cost), pg_catalog.sum(s.total_time_ms)::bigint
      FROM (
            SELECT r.generator, r.generations, r.successful, r.total_cost, r.total_time_ms
              FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
              JOIN aurora_telemetry.usage_rollups_current r
                ON r.user_id = $1 AND r.level = p.source AND r.bucket_start >= p.lo AND r.bucket_start < p.hi
            UNION ALL
            SELECT g.generator, 1, CASE WHEN g.success THEN 1 ELSE 0 END, COALESCE(g.cost, 0), g.time_ms
              FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
              JOIN public.generation_logs g
                ON p.source = 'raw' AND g.user_id = $1 AND g.created_at >= p.lo AND g.created_at < p.hi
           ) s
     WHERE s.generations > 0
     GROUP BY s.generator
     ORDER BY s.generator";

/// Totals and merged latency sketch per output bucket and generator.
const SERIES_SQL: &str = "
    SELECT s.bucket_start, s.generator, pg_catalog.sum(s.generations)::bigint,
           pg_catalog.sum(s.successful)::bigint, pg_catalog.sum(s.total_cost),
           pg_catalog.sum(s.total_time_ms)::bigint, aurora_telemetry.sketch_union(s.latency_sketch)
      FROM (
            SELECT pg_catalog.date_trunc($5, r.bucket_start, 'UTC') AS bucket_start, r.generator,
                   r.generations, r.successful, r.total_cost, r.total_time_ms, r.latency_sketch
              FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
              JOIN aurora_telemetry.usage_rollups_current r
                ON r.user_id = $1 AND r.level = p.source AND r.bucket_start >= p.lo AND r.bucket_start < p.hi
             WHERE r.generations > 0
            UNION ALL
            SELECT pg_catalog.date_trunc($5, g.created_at, 'UTC'), g.generator,
                   pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE g.success),
                   COALESCE(pg_catalog.sum(g.cost), 0), pg_catalog.sum(g.time_ms),
                   aurora_telemetry.latency_sketch(pg_catalog.array_agg(g.time_ms))
              FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(source, lo, hi)
              JOIN public.generation_logs g
                ON p.source = 'raw' AND g.user_id = $1 AND g.created_at >= p.lo AND g.created_at < p.hi
             GROUP BY 1, 2
           ) s
     GROUP BY s.bucket_start, s.generator
     ORDER BY s.bucket_start, s.generator";

#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    generations: i64,
    successful: i64,
    cost: Decimal,
    time_ms: i64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.generations += other.generations;
        self.successful += other.successful;
        self.cost += other.cost;
        self.time_ms += other.time_ms;
    }

    /// Mean latency, rounded half away from zero to 2 decimal places; 0 with no calls.
    fn average_time_ms(&self) -> Decimal {
        if self.generations == 0 {
            return Decimal::new(0, 2);
        }
        let mut average = (Decimal::from(self.time_ms) / Decimal::from(self.generations))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        average.rescale(2);
        average
    }
}

/// Validated arguments shared by the statistics functions.
struct Query {
    user_id: Uuid,
    since: i64,
    until: i64,
}

impl Query {
    fn new(
        user_id: Option<Uuid>,
        since: Option<TimestampWithTimeZone>,
        until: Option<TimestampWithTimeZone>,
    ) -> Result<Self> {
        let user_id = access::readable_user(user_id)?;
        let since = since.map_or(i64::MIN, TimestampWithTimeZone::into_inner);
        let until = until.map_or(i64::MAX, TimestampWithTimeZone::into_inner);
        if since > until {
            return Err(TelemetryError::InvalidArgument(
                "since must not be later than until".to_owned(),
            ));
        }
        Ok(Query { user_id, since, until })
    }

    fn pieces(&self, coarsest: Level) -> Result<(Vec<String>, Vec<TimestampWithTimeZone>, Vec<TimestampWithTimeZone>)> {
        ranges::as_arrays(&ranges::plan(self.since, self.until, coarsest)?)
    }
}

fn totals_by_generator(query: &Query) -> Result<Vec<(String, Totals)>> {
    let (sources, starts, ends) = query.pieces(Level::Month)?;
    Spi::connect(|client| {
        let rows = plans::select(
            client,
            TOTALS_SQL,
            &[query.user_id.into(), sources.into(), starts.into(), ends.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let generator = row.get::<String>(1)?.unwrap_or_default();
            out.push((generator, totals_from(&row, 2)?));
        }
        Ok(out)
    })
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

fn number(d: Decimal) -> Value {
    // Decimal's text is exact; serde_json keeps it as a JSON number without going through f64
    // only when parsed from text.
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

struct Summary {
    all: Totals,
    breakdown: Map<String, Value>,
}

fn summarize(query: &Query) -> Result<Summary> {
    let mut all = Totals::default();
    let mut breakdown = Map::new();
    for (generator, totals) in totals_by_generator(query)? {
        all.add(&totals);
        breakdown.insert(
            generator,
            json!({
                "count": totals.generations,
                "totalCost": number(totals.cost),
                "averageTimeMs": number(totals.average_time_ms()),
            }),
        );
    }
    Ok(Summary { all, breakdown })
}

/// `public.get_user_usage_stats(user_id, since, until)`: one row of totals.
#[pg_extern(sql = false)]
fn get_user_usage_stats(
    user_id: Option<Uuid>,
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> TableIterator<
    'static,
    (
        name!(total_generations, i64),
        name!(successful_generations, i64),
        name!(failed_generations, i64),
        name!(total_cost, AnyNumeric),
        name!(average_time_ms, AnyNumeric),
        name!(generator_breakdown, JsonB),
    ),
> {
    let row = (|| -> Result<_> {
        let summary = summarize(&Query::new(user_id, since, until)?)?;
        let all = &summary.all;
        Ok((
            all.generations,
            all.successful,
            all.generations - all.successful,
            to_numeric(all.cost)?,
            to_numeric(all.average_time_ms())?,
            JsonB(Value::Object(summary.breakdown)),
        ))
    })()
    .or_report();
    TableIterator::once(row)
}

/// `public.get_user_usage_stats_json(user_id, since, until)`: the seed's response object.
#[pg_extern(sql = false)]
fn get_user_usage_stats_json(
    user_id: Option<Uuid>,
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> JsonB {
    (|| -> Result<_> {
        let summary = summarize(&Query::new(user_id, since, until)?)?;
        let all = &summary.all;
        Ok(JsonB(json!({
            "totalGenerations": all.generations,
            "successfulGenerations": all.successful,
            "failedGenerations": all.generations - all.successful,
            "totalCost": number(all.cost),
            "averageTimeMs": number(all.average_time_ms()),
            "generatorBreakdown": Value::Object(summary.breakdown),
        })))
    })()
    .or_report()
}

type SeriesRow = (
    TimestampWithTimeZone,
    String,
    i64,
    i64,
    i64,
    AnyNumeric,
    AnyNumeric,
    Option<AnyNumeric>,
    Option<AnyNumeric>,
    Option<AnyNumeric>,
);

/// The rollup level whose buckets nest inside the requested output bucket.
fn coarsest_level_for(bucket: &str) -> Result<Level> {
    match bucket {
        "hour" => Ok(Level::Hour),
        "day" | "week" => Ok(Level::Day),
        "month" => Ok(Level::Month),
        other => Err(TelemetryError::InvalidArgument(format!(
            "bucket must be one of hour, day, week, month; got \"{other}\""
        ))),
    }
}

fn percentile(sketch: &LatencySketch, q: f64) -> Result<Option<AnyNumeric>> {
    sketch
        .quantile(q)
        .map(|v| {
            Decimal::from_f64_retain(v)
                .map(|d| d.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero))
                .ok_or(TelemetryError::Internal("latency estimate out of range"))
                .and_then(to_numeric)
        })
        .transpose()
}

fn series(query: &Query, bucket: &str) -> Result<Vec<SeriesRow>> {
    let (sources, starts, ends) = query.pieces(coarsest_level_for(bucket)?)?;
    Spi::connect(|client| {
        let rows = plans::select(
            client,
            SERIES_SQL,
            &[query.user_id.into(), sources.into(), starts.into(), ends.into(), bucket.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let bucket_start = row
                .get::<TimestampWithTimeZone>(1)?
                .ok_or(TelemetryError::Internal("bucket without a start"))?;
            let generator = row.get::<String>(2)?.unwrap_or_default();
            let totals = totals_from(&row, 3)?;
            let sketch = match row.get::<&[u8]>(7)? {
                Some(bytes) => LatencySketch::from_bytes(bytes)?,
                None => LatencySketch::new(),
            };
            out.push((
                bucket_start,
                generator,
                totals.generations,
                totals.successful,
                totals.generations - totals.successful,
                to_numeric(totals.cost)?,
                to_numeric(totals.average_time_ms())?,
                percentile(&sketch, 0.50)?,
                percentile(&sketch, 0.95)?,
                percentile(&sketch, 0.99)?,
            ));
        }
        Ok(out)
    })
}

/// `public.get_user_usage_timeseries(user_id, bucket, since, until)`: one row per UTC bucket and
/// generator that had calls.
#[pg_extern(sql = false)]
fn get_user_usage_timeseries(
    user_id: Option<Uuid>,
    bucket: Option<&str>,
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
) -> TableIterator<
    'static,
    (
        name!(bucket_start, TimestampWithTimeZone),
        name!(generator, String),
        name!(count, i64),
        name!(successful, i64),
        name!(failed, i64),
        name!(total_cost, AnyNumeric),
        name!(average_time_ms, AnyNumeric),
        name!(p50_time_ms, Option<AnyNumeric>),
        name!(p95_time_ms, Option<AnyNumeric>),
        name!(p99_time_ms, Option<AnyNumeric>),
    ),
> {
    let rows = (|| -> Result<_> {
        let bucket = bucket.ok_or(TelemetryError::NullArgument("bucket"))?;
        coarsest_level_for(bucket)?;
        series(&Query::new(user_id, since, until)?, bucket)
    })()
    .or_report();
    TableIterator::new(rows)
}
