//! Alerts over `pg_notify`, evaluated once per commit from what the commit changed.
//!
//! - `cost_alert`: a user's cost for the current UTC day (or month) crosses their limit, or a
//!   configured multiple of it. The spend row is updated under its row lock, so exactly one
//!   transaction sees each crossing.
//! - `error_rate_alert`: more than `error_rate_threshold` of the current hour's calls failed,
//!   per generator across all users and per user; `resolved` follows when the rate drops back.
//! - `latency_alert`: a generator's average or p95 latency this hour is `latency_alert_factor`
//!   times its trailing baseline; `resolved` follows when it drops back.
//! - `usage_anomaly`: a user's calls or cost this hour are far above the median of their own
//!   past hours (median + `anomaly_sensitivity` x 1.4826 x MAD).
//!
//! The opt-in live feed (`generation_logged`, src/feed.rs) is sent from here too, so that it
//! shares the containment below.
//!
//! Each alert fires once per window and level (`alert_state` holds the claim), is recorded in
//! `aurora_telemetry.alerts` and is delivered at commit, so a rolled-back transaction sends
//! nothing. Evaluation runs in a subtransaction: if it fails, the logged rows and rollups
//! stay, the failure is recorded in `alert_failures` and raised as a WARNING.

use crate::errors::{Result, TelemetryError};
use crate::pricing::to_decimal;
use crate::rollups::Flushed;
use crate::settings::Settings;
use crate::sketch::LatencySketch;
use crate::ranges::Level;
use crate::{budgets, catalog_cache, feed, plans, subtransaction};
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyNumeric, JsonB, Uuid};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Hours of a user's own history needed before their usage can be called anomalous.
const ANOMALY_MIN_HISTORY_HOURS: i32 = 24;

/// The current UTC hour, day and month (of the transaction's start, like `now()`).
struct Now {
    hour: TimestampWithTimeZone,
    day: TimestampWithTimeZone,
    month: TimestampWithTimeZone,
}

impl Now {
    fn current() -> Result<Self> {
        // SAFETY: reads the start time of the current transaction, which `now()` returns.
        let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
        let at = |level: Level| -> Result<TimestampWithTimeZone> {
            TimestampWithTimeZone::try_from(level.floor(now)?).map_err(|_| TelemetryError::Internal("now() out of range"))
        };
        Ok(Now { hour: at(Level::Hour)?, day: at(Level::Day)?, month: at(Level::Month)? })
    }
}

/// A UTC day, month or hour as the payloads show it.
fn day_text(t: TimestampWithTimeZone) -> String {
    let utc = t.to_utc();
    format!("{:04}-{:02}-{:02}", utc.year(), utc.month(), utc.day())
}

fn month_text(t: TimestampWithTimeZone) -> String {
    let utc = t.to_utc();
    format!("{:04}-{:02}", utc.year(), utc.month())
}

fn hour_text(t: TimestampWithTimeZone) -> String {
    format!("{}T{:02}:00:00Z", day_text(t), t.to_utc().hour())
}

/// Evaluate alerts for one flush. Never raises: a failure is recorded and reported.
pub fn evaluate(flushed: &Flushed) {
    let outcome = subtransaction::run(|| {
        let catalogs = catalog_cache::get()?;
        let settings = &catalogs.settings;
        if restoring() {
            return Ok(());
        }
        if settings.realtime_feed() {
            feed::announce(flushed)?;
        }
        if !settings.alerts_enabled() {
            return Ok(());
        }
        let now = Now::current()?;
        let hour = ThisHour::read(flushed, &now)?;
        let mut actions = Vec::new();
        cost_alerts(flushed, settings, &now, &mut actions)?;
        error_rate_alerts(&hour, settings, &now, &mut actions)?;
        latency_alerts(&hour, settings, &now, &mut actions)?;
        usage_anomalies(&hour, settings, &now, &mut actions)?;
        // One order for every transaction, so that racing claims cannot deadlock.
        actions.sort_by(|a, b| a.key().cmp(&b.key()));
        for action in actions {
            action.apply()?;
        }
        Ok(())
    });
    if let Err(message) = outcome {
        record_failure(&message);
    }
}

/// pg_restore replays old rows through the triggers; they are history, not news.
fn restoring() -> bool {
    // SAFETY: application_name is a GUC string, NULL or NUL-terminated, owned by guc.c.
    unsafe {
        let name = pg_sys::application_name;
        !name.is_null() && std::ffi::CStr::from_ptr(name).to_bytes() == b"pg_restore"
    }
}

fn record_failure(message: &str) {
    let recorded = Spi::run_with_args(
        "INSERT INTO aurora_telemetry.alert_failures (error) VALUES ($1)",
        &[message.into()],
    );
    let note = if recorded.is_ok() { "" } else { " (and could not be recorded)" };
    pgrx::warning!(
        "aurora_telemetry: alert evaluation failed{note}: {message}; the generations were logged and the statistics updated"
    );
}

/// One alert to send or resolve.
struct Action {
    resolve: bool,
    kind: &'static str,
    subject: String,
    window_start: TimestampWithTimeZone,
    level: Decimal,
    scope: &'static str,
    user_id: Option<Uuid>,
    generator: Option<String>,
    period: &'static str,
    payload: Value,
}

impl Action {
    fn key(&self) -> (&'static str, &str, i64, Decimal, bool) {
        (self.kind, &self.subject, self.window_start.into_inner(), self.level, self.resolve)
    }

    fn apply(self) -> Result<()> {
        if self.resolve {
            self.apply_resolution()
        } else {
            self.apply_firing()
        }
    }

    fn apply_firing(self) -> Result<()> {
        Spi::connect_mut(|client| {
            let claimed = plans::update(
                client,
                "INSERT INTO aurora_telemetry.alert_state (kind, subject, window_start, level, alert_id)
                 VALUES ($1, $2, $3, $4, 0)
                 ON CONFLICT DO NOTHING
                 RETURNING 1",
                &[self.kind.into(), self.subject.as_str().into(), self.window_start.into(), level(&self.level)?.into()],
            )?;
            if claimed.is_empty() {
                return Ok(());
            }
            let alert_id = client
                .update(
                    "INSERT INTO aurora_telemetry.alerts
                         (kind, scope, user_id, generator, period, window_start, level, figures, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                     RETURNING id",
                    None,
                    &[
                        self.kind.into(),
                        self.scope.into(),
                        self.user_id.into(),
                        self.generator.clone().into(),
                        self.period.into(),
                        self.window_start.into(),
                        level(&self.level)?.into(),
                        JsonB(self.payload.clone()).into(),
                    ],
                )?
                .first()
                .get_one::<i64>()?
                .ok_or(TelemetryError::Internal("alert insert returned no id"))?;
            plans::update(
                client,
                "UPDATE aurora_telemetry.alert_state SET alert_id = $5
                  WHERE kind = $1 AND subject = $2 AND window_start = $3 AND level = $4",
                &[
                    self.kind.into(),
                    self.subject.as_str().into(),
                    self.window_start.into(),
                    level(&self.level)?.into(),
                    alert_id.into(),
                ],
            )?;
            notify(client, self.kind, with_alert_id(self.payload, alert_id))
        })
    }

    fn apply_resolution(self) -> Result<()> {
        Spi::connect_mut(|client| {
            let resolved = plans::update(
                client,
                "UPDATE aurora_telemetry.alert_state SET resolved = true
                  WHERE kind = $1 AND subject = $2 AND window_start = $3 AND level = $4 AND NOT resolved
                  RETURNING alert_id",
                &[self.kind.into(), self.subject.as_str().into(), self.window_start.into(), level(&self.level)?.into()],
            )?;
            let Some(alert_id) = resolved.into_iter().next().map(|row| row.get::<i64>(1)).transpose()?.flatten()
            else {
                return Ok(());
            };
            plans::update(
                client,
                "UPDATE aurora_telemetry.alerts SET resolved_at = pg_catalog.now() WHERE id = $1",
                &[alert_id.into()],
            )?;
            notify(client, self.kind, with_alert_id(self.payload, alert_id))
        })
    }
}

fn level(level: &Decimal) -> Result<AnyNumeric> {
    crate::pricing::to_numeric(*level)
}

fn with_alert_id(mut payload: Value, alert_id: i64) -> Value {
    if let Value::Object(fields) = &mut payload {
        fields.insert("alert_id".into(), Value::from(alert_id));
    }
    payload
}

/// Queue a notification; Postgres delivers it at commit. Payloads are a few fixed fields and
/// stay far below NOTIFY's 8000-byte limit.
pub fn notify(client: &mut pgrx::spi::SpiClient<'_>, channel: &str, payload: Value) -> Result<()> {
    plans::update(client, "SELECT pg_catalog.pg_notify($1, $2)", &[channel.into(), payload.to_string().into()])?;
    Ok(())
}

pub fn money(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

fn cost_alerts(flushed: &Flushed, settings: &Settings, now: &Now, actions: &mut Vec<Action>) -> Result<()> {
    let levels = settings.cost_alert_levels();
    let mut limits_of: BTreeMap<Uuid, budgets::Limits> = BTreeMap::new();
    for change in &flushed.spend {
        let (period, current) = match change.period.as_str() {
            "day" => ("day", now.day),
            _ => ("month", now.month),
        };
        // Back-filled rows for past periods are history, not news.
        if change.period_start != current {
            continue;
        }
        let limits = match limits_of.get(&change.user_id) {
            Some(limits) => limits.clone(),
            None => {
                let limits = budgets::Limits::of(change.user_id, settings)?;
                limits_of.insert(change.user_id, limits.clone());
                limits
            }
        };
        let Some(limit) = (if period == "day" { limits.daily } else { limits.monthly }) else {
            continue;
        };
        for level in &levels {
            let threshold = limit * level;
            if !(change.before < threshold && threshold <= change.after) {
                continue;
            }
            let mut payload = json!({
                "user_id": change.user_id.to_string(),
                "period": period,
                "threshold": money(threshold),
                "limit": money(limit),
                "level": money(*level),
                "day": day_text(now.day),
                "month": month_text(now.month),
            });
            if let Value::Object(fields) = &mut payload {
                let name = if period == "day" { "daily_cost" } else { "monthly_cost" };
                fields.insert(name.into(), money(change.after));
            }
            actions.push(Action {
                resolve: false,
                kind: "cost_alert",
                subject: format!("user:{}:{period}", change.user_id),
                window_start: current,
                level: *level,
                scope: "user",
                user_id: Some(change.user_id),
                generator: None,
                period,
                payload,
            });
        }
    }
    Ok(())
}

/// This hour's figures for every generator and user that received calls in it at this
/// commit, read once for all the checks below.
struct ThisHour {
    generators: BTreeMap<String, GeneratorHour>,
    users: BTreeMap<Uuid, UserHour>,
}

/// A generator's calls this hour across all users (summed over its counter slots).
struct GeneratorHour {
    calls: i64,
    failed: i64,
    average: Option<f64>,
    p95: Option<f64>,
}

/// A user's calls this hour across generators.
struct UserHour {
    calls: i64,
    failed: i64,
    cost: Decimal,
}

const GENERATOR_HOUR: &str = "
    SELECT COALESCE(pg_catalog.sum(generations), 0)::bigint, COALESCE(pg_catalog.sum(failed), 0)::bigint,
           pg_catalog.sum(total_time_ms)::bigint, aurora_telemetry.sketch_union(latency_sketch)
      FROM aurora_telemetry.generator_hourly WHERE generator = $1 AND hour_start = $2";

const USER_HOUR: &str = "
    SELECT COALESCE(pg_catalog.sum(generations), 0)::bigint,
           COALESCE(pg_catalog.sum(generations - successful), 0)::bigint,
           COALESCE(pg_catalog.sum(total_cost), 0)
      FROM aurora_telemetry.usage_rollups WHERE user_id = $1 AND level = 'hour' AND bucket_start = $2";

impl ThisHour {
    fn read(flushed: &Flushed, now: &Now) -> Result<Self> {
        let current = flushed.calls.iter().filter(|c| c.hour_start == now.hour);
        let generators: BTreeSet<&str> = current.clone().map(|c| c.generator.as_str()).collect();
        let users: BTreeSet<Uuid> = current.map(|c| c.user_id).collect();
        Spi::connect(|client| {
            let mut hour = ThisHour { generators: BTreeMap::new(), users: BTreeMap::new() };
            for generator in generators {
                let rows = plans::select(client, GENERATOR_HOUR, &[generator.into(), now.hour.into()])?;
                let row = rows.first();
                let calls = row.get::<i64>(1)?.unwrap_or(0);
                let total = row.get::<i64>(3)?.unwrap_or(0);
                let p95 = match row.get::<&[u8]>(4)? {
                    Some(bytes) => LatencySketch::from_bytes(bytes)?.quantile(0.95),
                    None => None,
                };
                hour.generators.insert(
                    generator.to_owned(),
                    GeneratorHour {
                        calls,
                        failed: row.get::<i64>(2)?.unwrap_or(0),
                        average: (calls > 0).then(|| total as f64 / calls as f64),
                        p95,
                    },
                );
            }
            for user in users {
                let rows = plans::select(client, USER_HOUR, &[user.into(), now.hour.into()])?;
                let row = rows.first();
                let cost = row.get::<AnyNumeric>(3)?.map(|n| to_decimal(&n)).transpose()?.unwrap_or_default();
                hour.users.insert(
                    user,
                    UserHour { calls: row.get::<i64>(1)?.unwrap_or(0), failed: row.get::<i64>(2)?.unwrap_or(0), cost },
                );
            }
            Ok(hour)
        })
    }
}

fn error_rate_alerts(this_hour: &ThisHour, settings: &Settings, now: &Now, actions: &mut Vec<Action>) -> Result<()> {
    let threshold = settings.error_rate_threshold();
    let min_calls = settings.alert_min_calls();
    let hour = hour_text(now.hour);

    let mut judge = |scope: &'static str, subject: String, user_id: Option<Uuid>, generator: Option<String>, (calls, failed): (i64, i64)| {
        if calls < min_calls {
            return;
        }
        let rate = failed as f64 / calls as f64;
        let firing = rate > threshold;
        let mut payload = json!({
            "status": if firing { "firing" } else { "resolved" },
            "scope": scope,
            "hour": hour,
            "calls": calls,
            "failed": failed,
            "error_rate": (rate * 10_000.0).round() / 10_000.0,
            "threshold": threshold,
        });
        if let Value::Object(fields) = &mut payload {
            match (&user_id, &generator) {
                (Some(user), _) => fields.insert("user_id".into(), Value::from(user.to_string())),
                (_, Some(name)) => fields.insert("generator".into(), Value::from(name.as_str())),
                _ => None,
            };
        }
        actions.push(Action {
            resolve: !firing,
            kind: "error_rate_alert",
            subject,
            window_start: now.hour,
            level: Decimal::ONE,
            scope,
            user_id,
            generator,
            period: "hour",
            payload,
        });
    };
    for (generator, figures) in &this_hour.generators {
        let counts = (figures.calls, figures.failed);
        judge("generator", format!("generator:{generator}"), None, Some(generator.clone()), counts);
    }
    for (user, figures) in &this_hour.users {
        judge("user", format!("user:{user}"), Some(*user), None, (figures.calls, figures.failed));
    }
    Ok(())
}

/// A generator's latency baseline: calls, mean and p95 over its trailing days.
struct Baseline {
    calls: i64,
    average: Option<f64>,
    p95: Option<f64>,
}

const STORED_GENERATOR_BASELINE: &str = "
    SELECT generations, average_time_ms, p95_time_ms FROM aurora_telemetry.generator_baselines
     WHERE generator = $1 AND hour_start = $2";

const STORE_GENERATOR_BASELINE: &str = "
    INSERT INTO aurora_telemetry.generator_baselines (generator, hour_start, generations, average_time_ms, p95_time_ms)
    SELECT $1, $2, COALESCE(pg_catalog.sum(generations), 0),
           pg_catalog.sum(total_time_ms)::float8 / NULLIF(pg_catalog.sum(generations), 0),
           aurora_telemetry.sketch_quantile(aurora_telemetry.sketch_union(latency_sketch), 0.95)
      FROM aurora_telemetry.generator_hourly
     WHERE generator = $1 AND hour_start < $2
       AND hour_start >= $2 - pg_catalog.make_interval(days => $3)
    ON CONFLICT DO NOTHING";

/// The generator's baseline before `hour`: computed by the first commit that needs it in the
/// hour (a scan of its trailing days), then read back by every later one.
fn generator_baseline(generator: &str, hour: TimestampWithTimeZone, days: i64) -> Result<Baseline> {
    Spi::connect_mut(|client| {
        let read = |client: &pgrx::spi::SpiClient<'_>| -> Result<Option<Baseline>> {
            let rows = plans::select(client, STORED_GENERATOR_BASELINE, &[generator.into(), hour.into()])?;
            rows.into_iter()
                .next()
                .map(|row| {
                    Ok(Baseline {
                        calls: row.get::<i64>(1)?.unwrap_or(0),
                        average: row.get::<f64>(2)?,
                        p95: row.get::<f64>(3)?,
                    })
                })
                .transpose()
        };
        if let Some(stored) = read(client)? {
            return Ok(stored);
        }
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        plans::update(client, STORE_GENERATOR_BASELINE, &[generator.into(), hour.into(), days.into()])?;
        read(client)?.ok_or(TelemetryError::Internal("generator baseline was not stored"))
    })
}

fn latency_alerts(this_hour: &ThisHour, settings: &Settings, now: &Now, actions: &mut Vec<Action>) -> Result<()> {
    let min_calls = settings.alert_min_calls();
    let factor = settings.latency_alert_factor();
    for (generator, current) in &this_hour.generators {
        if current.calls < min_calls {
            continue;
        }
        let baseline = generator_baseline(generator, now.hour, settings.latency_baseline_days())?;
        if baseline.calls < min_calls {
            continue;
        }
        let over = |now: Option<f64>, base: Option<f64>| matches!((now, base), (Some(n), Some(b)) if b > 0.0 && n > factor * b);
        let firing = over(current.average, baseline.average) || over(current.p95, baseline.p95);
        let round = |v: Option<f64>| v.map(|v| (v * 100.0).round() / 100.0);
        actions.push(Action {
            resolve: !firing,
            kind: "latency_alert",
            subject: format!("generator:{generator}"),
            window_start: now.hour,
            level: Decimal::ONE,
            scope: "generator",
            user_id: None,
            generator: Some(generator.clone()),
            period: "hour",
            payload: json!({
                "status": if firing { "firing" } else { "resolved" },
                "generator": generator,
                "hour": hour_text(now.hour),
                "calls": current.calls,
                "average_time_ms": round(current.average),
                "p95_time_ms": round(current.p95),
                "baseline_average_time_ms": round(baseline.average),
                "baseline_p95_time_ms": round(baseline.p95),
                "factor": factor,
            }),
        });
    }
    Ok(())
}

/// Median and median absolute deviation.
pub fn median_and_mad(values: &[f64]) -> (f64, f64) {
    fn median(sorted: &[f64]) -> f64 {
        match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = median(&sorted);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - m).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    (m, median(&deviations))
}

struct UsageBaseline {
    hours: i32,
    median_calls: f64,
    mad_calls: f64,
    median_cost: f64,
    mad_cost: f64,
}

/// A user's hourly calls and cost over their past hours (from their first hour in the
/// window, hours without calls counting as 0), computed on first need in an hour.
fn usage_baseline(user_id: Uuid, hour: TimestampWithTimeZone, window_hours: i64) -> Result<UsageBaseline> {
    Spi::connect_mut(|client| {
        let stored = plans::select(
            client,
            "SELECT hours, median_calls, mad_calls, median_cost, mad_cost FROM aurora_telemetry.user_baselines
              WHERE user_id = $1 AND hour_start = $2",
            &[user_id.into(), hour.into()],
        )?;
        if let Some(row) = stored.into_iter().next() {
            return Ok(UsageBaseline {
                hours: row.get::<i32>(1)?.unwrap_or(0),
                median_calls: row.get::<f64>(2)?.unwrap_or(0.0),
                mad_calls: row.get::<f64>(3)?.unwrap_or(0.0),
                median_cost: row.get::<f64>(4)?.unwrap_or(0.0),
                mad_cost: row.get::<f64>(5)?.unwrap_or(0.0),
            });
        }
        let rows = plans::select(
            client,
            "WITH past AS (
                 SELECT bucket_start, pg_catalog.sum(generations)::float8 AS calls, pg_catalog.sum(total_cost)::float8 AS cost
                   FROM aurora_telemetry.usage_rollups
                  WHERE user_id = $1 AND level = 'hour' AND bucket_start < $2
                    AND bucket_start >= $2 - pg_catalog.make_interval(hours => $3)
                  GROUP BY bucket_start)
             SELECT h.hour, COALESCE(p.calls, 0), COALESCE(p.cost, 0)
               FROM pg_catalog.generate_series((SELECT pg_catalog.min(bucket_start) FROM past),
                                               $2 - interval '1 hour', interval '1 hour') AS h(hour)
               LEFT JOIN past p ON p.bucket_start = h.hour",
            &[user_id.into(), hour.into(), (window_hours as i32).into()],
        )?;
        let (mut calls, mut costs) = (Vec::new(), Vec::new());
        for row in rows {
            calls.push(row.get::<f64>(2)?.unwrap_or(0.0));
            costs.push(row.get::<f64>(3)?.unwrap_or(0.0));
        }
        let (median_calls, mad_calls) = median_and_mad(&calls);
        let (median_cost, mad_cost) = median_and_mad(&costs);
        let baseline = UsageBaseline { hours: calls.len() as i32, median_calls, mad_calls, median_cost, mad_cost };
        plans::update(
            client,
            "INSERT INTO aurora_telemetry.user_baselines
                 (user_id, hour_start, hours, median_calls, mad_calls, median_cost, mad_cost)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                user_id.into(),
                hour.into(),
                baseline.hours.into(),
                baseline.median_calls.into(),
                baseline.mad_calls.into(),
                baseline.median_cost.into(),
                baseline.mad_cost.into(),
            ],
        )?;
        Ok(baseline)
    })
}

fn usage_anomalies(this_hour: &ThisHour, settings: &Settings, now: &Now, actions: &mut Vec<Action>) -> Result<()> {
    let k = settings.anomaly_sensitivity();
    let min_calls = settings.alert_min_calls();
    for (&user, figures) in &this_hour.users {
        let (calls, cost) = (figures.calls, figures.cost);
        if calls < min_calls {
            continue;
        }
        let baseline = usage_baseline(user, now.hour, settings.anomaly_baseline_hours())?;
        if baseline.hours < ANOMALY_MIN_HISTORY_HOURS {
            continue;
        }
        let cost_value: f64 = cost.to_string().parse().unwrap_or(0.0);
        // Floors keep a perfectly regular history (MAD 0) from flagging one extra call or cent.
        let checks = [
            ("calls", calls as f64, baseline.median_calls, baseline.mad_calls, 1.0),
            ("cost", cost_value, baseline.median_cost, baseline.mad_cost, 0.01),
        ];
        for (index, (metric, value, median, mad, floor)) in checks.into_iter().enumerate() {
            let threshold = median + k * (1.4826 * mad).max(floor);
            if value <= threshold {
                continue;
            }
            actions.push(Action {
                resolve: false,
                kind: "usage_anomaly",
                subject: format!("user:{user}:{metric}"),
                window_start: now.hour,
                level: Decimal::from(index as i64 + 1),
                scope: "user",
                user_id: Some(user),
                generator: None,
                period: "hour",
                payload: json!({
                    "user_id": user.to_string(),
                    "hour": hour_text(now.hour),
                    "metric": metric,
                    "value": if metric == "cost" { money(cost) } else { Value::from(calls) },
                    "median": median,
                    "mad": mad,
                    "threshold": (threshold * 10_000.0).round() / 10_000.0,
                    "sensitivity": k,
                }),
            });
        }
    }
    Ok(())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::median_and_mad;
    use pgrx::prelude::*;

    #[pg_test]
    fn median_and_mad_are_robust_to_one_outlier() {
        assert_eq!(median_and_mad(&[1.0, 2.0, 3.0, 4.0, 1000.0]), (3.0, 1.0));
        assert_eq!(median_and_mad(&[5.0, 5.0, 5.0, 5.0]), (5.0, 0.0));
        assert_eq!(median_and_mad(&[]), (0.0, 0.0));
        assert_eq!(median_and_mad(&[1.0, 3.0]), (2.0, 1.0));
    }
}
