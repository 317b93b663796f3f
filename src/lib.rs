//! aurora_telemetry: AI generation telemetry kept inside PostgreSQL.
//!
//! Layout, one concern a file:
//! - `errors`: the error enum and its SQLSTATEs.
//! - `settings`: every administrator-changeable setting and its default.
//! - `generators`: the catalog of AI services that may be logged.
//! - `pricing`: exact cost of a call from the price catalog; `repricing`: fixing stored costs.
//! - `metadata`: reading counts from and redacting the metadata column inside Postgres.
//! - `ingest`: the trigger every stored generation row passes through (validate, redact, price).
//! - `logging`: `log_generation`, the logging API with idempotency keys.
//! - `rollups`: per-user hourly/daily/monthly totals maintained by statement triggers;
//!   `staged_rows`: which staged deltas this transaction has not applied yet.
//! - `sketch`: the mergeable latency sketch kept in the rollups.
//! - `ranges`: splitting a time range into rollup buckets and raw edges.
//! - `stats`: usage statistics and time series served from the rollups.
//! - `access`: who may read whose figures, and who is an administrator.
//! - `analytics`: figures across users (administrators' analytics, `billing_usage`).
//! - `export`: `export_generation_logs_csv`.
//! - `dashboard`: `telemetry_dashboard_html`, a self-contained HTML page with SVG charts.
//! - `alerts`: cost, error-rate, latency and anomaly alerts over pg_notify, once per window.
//! - `catalog_cache`: a per-backend copy of prices, generators and settings, invalidated on change.
//! - `budgets`: per-user limits, `check_budget` and the hard limit on `log_generation`.
//! - `drop_guard`: refusing a plain DROP EXTENSION while the logs hold rows.
//! - `feed`: the opt-in `generation_logged` live feed, one notification per user per commit.
//! - `subtransaction`: containing a failure (alerting must never cost a logged row).
//! - `plans`: the hot-path statements, planned once per backend.
//!
//! Hand-written SQL lives in `sql/` and is ordered here:
//! `bootstrap.sql` (install guard, Supabase stand-in), `schema.sql` (tables),
//! `metadata.sql` (deep JSON redaction), `triggers.sql` (wiring Rust triggers to tables), `sketch.sql` (the sketch aggregate),
//! `api.sql` (the public functions), `analytics.sql` (analytics views, exports, administrators'
//! functions and their grants), `security.sql` (RLS, grants, self-check).

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod access;
mod analytics;
mod alerts;
mod budgets;
mod catalog_cache;
mod dashboard;
mod drop_guard;
mod errors;
mod export;
mod feed;
mod generators;
mod ingest;
mod logging;
mod metadata;
mod plans;
mod pricing;
mod ranges;
mod repricing;
mod rollups;
mod settings;
mod stats;
mod subtransaction;
mod sketch;
mod staged_rows;

extension_sql_file!("../sql/bootstrap.sql", bootstrap);
extension_sql_file!("../sql/schema.sql", name = "schema");
extension_sql_file!(
    "../sql/triggers.sql",
    name = "triggers",
    requires = [
        "schema",
        "alerts",
        ingest::prepare_generation_log,
        rollups::maintain_usage_rollups,
        rollups::apply_pending_usage_deltas,
        catalog_cache::catalog_changed,
        settings::setting_is_valid
    ]
);
extension_sql_file!("../sql/sketch.sql", name = "sketch", requires = [sketch::sketch_merge]);
extension_sql_file!("../sql/alerts.sql", name = "alerts", requires = ["schema"]);
extension_sql_file!("../sql/metadata.sql", name = "metadata");
extension_sql_file!("../sql/guard.sql", name = "guard", requires = ["schema"]);
extension_sql_file!("../sql/api.sql", name = "api", requires = ["schema"]);
extension_sql_file!("../sql/analytics.sql", name = "analytics", requires = ["schema"]);
extension_sql_file!("../sql/security.sql", finalize);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
