//! aurora_telemetry: AI generation telemetry kept inside PostgreSQL.
//!
//! Layout, one concern a file:
//! - `errors`: the error enum and its SQLSTATEs.
//! - `generators`: the catalog of AI services that may be logged.
//! - `ingest`: the trigger every stored generation row passes through.
//!
//! Hand-written SQL lives in `sql/` and is ordered here:
//! `bootstrap.sql` (install guard, Supabase stand-in), `schema.sql` (tables),
//! `triggers.sql` (wiring Rust triggers to tables), `security.sql` (RLS, grants, self-check).

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod errors;
mod generators;
mod ingest;

extension_sql_file!("../sql/bootstrap.sql", bootstrap);
extension_sql_file!("../sql/schema.sql", name = "schema");
extension_sql_file!(
    "../sql/triggers.sql",
    name = "triggers",
    requires = ["schema", ingest::prepare_generation_log]
);
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
