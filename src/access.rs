//! Who may read whose figures.
//!
//! The public functions run as their caller (SECURITY INVOKER), so row-level security on the
//! logs and rollups applies underneath; this module adds the rule that asking for another
//! user's figures is an error, not an empty answer that would hide a bug in the caller.
//! `service_role`, members of `aurora_telemetry_admin` and superusers may read anyone's.

use crate::errors::{Result, TelemetryError};
use pgrx::prelude::*;
use pgrx::Uuid;

/// True when the current role may read every user's figures.
pub fn caller_is_privileged() -> Result<bool> {
    let privileged = Spi::get_one::<bool>(
        "SELECT pg_catalog.pg_has_role(CURRENT_USER, 'service_role', 'USAGE')
             OR pg_catalog.pg_has_role(CURRENT_USER, 'aurora_telemetry_admin', 'USAGE')",
    )?;
    Ok(privileged == Some(true))
}

/// The user whose figures the caller asked for, once the caller is allowed to read them.
pub fn readable_user(requested: Option<Uuid>) -> Result<Uuid> {
    let requested = requested.ok_or(TelemetryError::NullArgument("user_id"))?;
    if caller_is_privileged()? {
        return Ok(requested);
    }
    let me = Spi::get_one::<Uuid>("SELECT auth.uid()")?;
    if me == Some(requested) {
        Ok(requested)
    } else {
        Err(TelemetryError::NotYourData)
    }
}
