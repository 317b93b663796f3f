//! Every administrator-changeable setting, in one file.
//!
//! Values live in `aurora_telemetry.settings` (name, jsonb value) so that `pg_dump` carries
//! them; a missing row means the default documented here. An administrator changes one with
//!
//! ```sql
//! INSERT INTO aurora_telemetry.settings (name, value) VALUES ('daily_cost_threshold', '25')
//! ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
//! ```
//!
//! A CHECK constraint calls [`setting_is_valid`], so a malformed value is refused when it is
//! written, never discovered later on the insert path.

use crate::errors::Result;
use pgrx::prelude::*;
use pgrx::JsonB;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::HashMap;
use std::str::FromStr;

/// A named setting with its default and a validator for stored values.
pub struct Setting {
    pub name: &'static str,
    default: fn() -> Value,
    valid: fn(&Value) -> bool,
}

fn non_negative_number(v: &Value) -> bool {
    v.as_f64().is_some_and(|n| n.is_finite() && n >= 0.0)
}

fn positive_whole_number(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n >= 1)
}

/// Metadata keys removed (at any depth) before a generation row is stored, so that personal
/// content such as the user's reflection never lands in telemetry. Default `["reflection"]`.
pub static REDACTED_METADATA_KEYS: Setting = Setting {
    name: "redacted_metadata_keys",
    default: || Value::from(vec!["reflection"]),
    valid: |v| v.as_array().is_some_and(|keys| keys.iter().all(Value::is_string)),
};

/// Whether alerts are evaluated and sent at all. Default `true`.
pub static ALERTS_ENABLED: Setting =
    Setting { name: "alerts_enabled", default: || Value::Bool(true), valid: Value::is_boolean };

/// A user's daily cost (USD, UTC day) above which `cost_alert` fires, unless their budget
/// sets a daily limit. Default `10.00`, as in the seed.
pub static DAILY_COST_THRESHOLD: Setting = Setting {
    name: "daily_cost_threshold",
    default: || Value::from(10),
    valid: non_negative_number,
};

/// A user's monthly cost (USD, UTC month) above which `cost_alert` fires with
/// `"period": "month"`, unless their budget sets a monthly limit. Default `null`: none.
pub static MONTHLY_COST_THRESHOLD: Setting = Setting {
    name: "monthly_cost_threshold",
    default: || Value::Null,
    valid: |v| v.is_null() || non_negative_number(v),
};

/// Multiples of a cost threshold at which `cost_alert` fires, each once per period.
/// Default `[1]`; `[1, 2]` also alerts when twice the threshold is crossed.
pub static COST_ALERT_LEVELS: Setting = Setting {
    name: "cost_alert_levels",
    default: || Value::from(vec![1]),
    valid: |v| {
        v.as_array()
            .is_some_and(|levels| !levels.is_empty() && levels.iter().all(|l| l.as_f64().is_some_and(|n| n > 0.0)))
    },
};

/// Share of failed calls in the current hour above which `error_rate_alert` fires. Default 0.20.
pub static ERROR_RATE_THRESHOLD: Setting = Setting {
    name: "error_rate_threshold",
    default: || Value::from(0.2),
    valid: |v| v.as_f64().is_some_and(|n| (0.0..=1.0).contains(&n)),
};

/// Calls an hour must have seen before error-rate, latency or anomaly alerts may fire.
/// Default 20.
pub static ALERT_MIN_CALLS: Setting =
    Setting { name: "alert_min_calls", default: || Value::from(20), valid: positive_whole_number };

/// How many times its baseline a generator's average or p95 latency must be for
/// `latency_alert`. Default 2.
pub static LATENCY_ALERT_FACTOR: Setting = Setting {
    name: "latency_alert_factor",
    default: || Value::from(2),
    valid: |v| v.as_f64().is_some_and(|n| n.is_finite() && n > 1.0),
};

/// Days before the current hour that form the latency baseline. Default 7.
pub static LATENCY_BASELINE_DAYS: Setting =
    Setting { name: "latency_baseline_days", default: || Value::from(7), valid: positive_whole_number };

/// How many robust standard deviations (1.4826 x MAD) above the median of a user's past
/// hours the current hour must be for `usage_anomaly`. Default 6.
pub static ANOMALY_SENSITIVITY: Setting = Setting {
    name: "anomaly_sensitivity",
    default: || Value::from(6),
    valid: |v| v.as_f64().is_some_and(|n| n.is_finite() && n > 0.0),
};

/// Hours before the current one that form a user's anomaly baseline. Default 168 (7 days).
pub static ANOMALY_BASELINE_HOURS: Setting =
    Setting { name: "anomaly_baseline_hours", default: || Value::from(168), valid: positive_whole_number };

/// Whether every committed transaction that logged calls sends one `generation_logged`
/// notification per user with its counts (the live feed). Default `false`.
pub static REALTIME_FEED: Setting =
    Setting { name: "realtime_feed", default: || Value::Bool(false), valid: Value::is_boolean };

/// How often, at most, each backend sweeps the staging table for usage deltas that
/// REPEATABLE READ or SERIALIZABLE transactions committed without applying (their rollup rows
/// changed after their snapshot), applying them and evaluating their alerts. Seconds; default
/// 60, 0: at every commit. The backend that left them applies them at its next commit anyway.
pub static STAGED_SWEEP_SECONDS: Setting =
    Setting { name: "staged_sweep_seconds", default: || Value::from(60), valid: non_negative_number };

/// All settings, for validation.
pub static ALL: &[&Setting] = &[
    &REDACTED_METADATA_KEYS,
    &ALERTS_ENABLED,
    &DAILY_COST_THRESHOLD,
    &MONTHLY_COST_THRESHOLD,
    &COST_ALERT_LEVELS,
    &ERROR_RATE_THRESHOLD,
    &ALERT_MIN_CALLS,
    &LATENCY_ALERT_FACTOR,
    &LATENCY_BASELINE_DAYS,
    &ANOMALY_SENSITIVITY,
    &ANOMALY_BASELINE_HOURS,
    &REALTIME_FEED,
    &STAGED_SWEEP_SECONDS,
];

/// The stored overrides, read once; typed accessors fall back to the defaults.
pub struct Settings(HashMap<String, Value>);

impl Settings {
    pub fn load() -> Result<Self> {
        Spi::connect(|client| {
            let mut values = HashMap::new();
            for row in client.select("SELECT name, value FROM aurora_telemetry.settings", None, &[])? {
                if let (Some(name), Some(value)) = (row.get::<String>(1)?, row.get::<JsonB>(2)?) {
                    values.insert(name, value.0);
                }
            }
            Ok(Settings(values))
        })
    }

    fn value(&self, setting: &Setting) -> Value {
        self.0.get(setting.name).cloned().unwrap_or_else(setting.default)
    }

    fn number(&self, setting: &Setting) -> f64 {
        let fallback = (setting.default)().as_f64().unwrap_or(0.0);
        self.value(setting).as_f64().unwrap_or(fallback)
    }

    fn decimal(&self, setting: &Setting) -> Option<Decimal> {
        let value = self.value(setting);
        value.as_number().and_then(|n| Decimal::from_str(&n.to_string()).ok())
    }

    pub fn redacted_metadata_keys(&self) -> Vec<String> {
        self.value(&REDACTED_METADATA_KEYS)
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
    pub fn realtime_feed(&self) -> bool {
        self.value(&REALTIME_FEED).as_bool().unwrap_or(false)
    }
    pub fn alerts_enabled(&self) -> bool {
        self.value(&ALERTS_ENABLED).as_bool().unwrap_or(true)
    }
    pub fn daily_cost_threshold(&self) -> Option<Decimal> {
        self.decimal(&DAILY_COST_THRESHOLD)
    }
    pub fn monthly_cost_threshold(&self) -> Option<Decimal> {
        self.decimal(&MONTHLY_COST_THRESHOLD)
    }
    pub fn cost_alert_levels(&self) -> Vec<Decimal> {
        let levels: Vec<Decimal> = self
            .value(&COST_ALERT_LEVELS)
            .as_array()
            .map(|levels| {
                levels
                    .iter()
                    .filter_map(|l| l.as_number().and_then(|n| Decimal::from_str(&n.to_string()).ok()))
                    .collect()
            })
            .unwrap_or_default();
        if levels.is_empty() {
            vec![Decimal::ONE]
        } else {
            levels
        }
    }
    pub fn error_rate_threshold(&self) -> f64 {
        self.number(&ERROR_RATE_THRESHOLD)
    }
    pub fn alert_min_calls(&self) -> i64 {
        self.number(&ALERT_MIN_CALLS) as i64
    }
    pub fn latency_alert_factor(&self) -> f64 {
        self.number(&LATENCY_ALERT_FACTOR)
    }
    pub fn latency_baseline_days(&self) -> i64 {
        self.number(&LATENCY_BASELINE_DAYS) as i64
    }
    pub fn anomaly_sensitivity(&self) -> f64 {
        self.number(&ANOMALY_SENSITIVITY)
    }
    pub fn anomaly_baseline_hours(&self) -> i64 {
        self.number(&ANOMALY_BASELINE_HOURS) as i64
    }
    /// In microseconds, as Postgres timestamps count.
    pub fn staged_sweep_interval_usecs(&self) -> i64 {
        (self.number(&STAGED_SWEEP_SECONDS) * 1e6).min(i64::MAX as f64) as i64
    }
}

/// Typed accessor for [`REDACTED_METADATA_KEYS`], from the per-backend catalog copy.
pub fn redacted_metadata_keys() -> Result<Vec<String>> {
    Ok(crate::catalog_cache::get()?.settings.redacted_metadata_keys())
}

/// Used by the CHECK constraint on `aurora_telemetry.settings`: a known name and a value of
/// the right shape.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn setting_is_valid(name: &str, value: JsonB) -> bool {
    ALL.iter().any(|s| s.name == name && (s.valid)(&value.0))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use rust_decimal::Decimal;

    #[pg_test]
    fn defaults_apply_until_an_override_is_stored() {
        assert_eq!(crate::settings::redacted_metadata_keys().expect("read"), vec!["reflection"]);
        let defaults = crate::settings::Settings::load().expect("load");
        assert_eq!(defaults.daily_cost_threshold(), Some(Decimal::from(10)));
        assert_eq!(defaults.monthly_cost_threshold(), None);
        assert_eq!(defaults.alert_min_calls(), 20);
        Spi::run(
            "INSERT INTO aurora_telemetry.settings (name, value) VALUES
                ('redacted_metadata_keys', '[\"email\", \"reflection\"]'),
                ('daily_cost_threshold', '2.5'), ('cost_alert_levels', '[1, 2]')",
        )
        .expect("store overrides");
        assert_eq!(
            crate::settings::redacted_metadata_keys().expect("read"),
            vec!["email", "reflection"]
        );
        let changed = crate::settings::Settings::load().expect("load");
        assert_eq!(changed.daily_cost_threshold(), Decimal::from_str_exact("2.5").ok());
        assert_eq!(changed.cost_alert_levels(), vec![Decimal::ONE, Decimal::from(2)]);
    }

    #[pg_test(error = "new row for relation \"settings\" violates check constraint \"settings_value_valid\"")]
    fn malformed_values_are_refused_on_write() {
        Spi::run("INSERT INTO aurora_telemetry.settings (name, value) VALUES ('redacted_metadata_keys', '\"reflection\"')")
            .expect("refused");
    }

    #[pg_test(error = "new row for relation \"settings\" violates check constraint \"settings_value_valid\"")]
    fn negative_thresholds_are_refused_on_write() {
        Spi::run("INSERT INTO aurora_telemetry.settings (name, value) VALUES ('daily_cost_threshold', '-1')")
            .expect("refused");
    }

    #[pg_test(error = "new row for relation \"settings\" violates check constraint \"settings_value_valid\"")]
    fn unknown_names_are_refused_on_write() {
        Spi::run("INSERT INTO aurora_telemetry.settings (name, value) VALUES ('no_such_setting', '1')").expect("refused");
    }
}
