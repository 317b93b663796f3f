//! The generators catalog (`aurora_telemetry.generators`): which AI services may be logged.
//!
//! `generation_logs.generator` references the catalog, so the foreign key is the final word;
//! this module exists to reject an unknown name earlier with a message that lists the
//! allowed ones instead of a bare constraint violation.

use crate::errors::{Result, TelemetryError};
use pgrx::prelude::*;

/// Succeeds when `name` is in the catalog; otherwise an `UnknownGenerator` error listing the
/// known names.
pub fn ensure_known(name: &str) -> Result<()> {
    let catalogs = crate::catalog_cache::get()?;
    if catalogs.is_known_generator(name) {
        return Ok(());
    }
    Err(TelemetryError::UnknownGenerator { name: name.to_owned(), known: catalogs.generators.clone() })
}

/// All catalog names, sorted (byte order, as `catalog_cache` searches them).
pub fn known_names() -> Result<Vec<String>> {
    let names = Spi::get_one::<Vec<String>>(
        "SELECT COALESCE(pg_catalog.array_agg(name ORDER BY name COLLATE \"C\"), '{}') FROM aurora_telemetry.generators",
    )?;
    Ok(names.unwrap_or_default())
}
