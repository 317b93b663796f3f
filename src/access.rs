//! Who may read whose figures.
//!
//! The public functions run as their caller (SECURITY INVOKER), so row-level security on the
//! logs and rollups applies underneath; this module adds the rule that asking for another
//! user's figures is an error, not an empty answer that would hide a bug in the caller.
//! `service_role` and administrators (see [`caller_is_admin`]) may read anyone's.

use crate::errors::{Result, TelemetryError};
use crate::plans;
use pgrx::Uuid;

/// The administrator rule in SQL (see [`caller_is_admin`]). The row-level security policies
/// for JWT administrators in `sql/analytics.sql` test the same `app_metadata` flag through
/// `auth.jwt()`; here the claims are read the way `auth.jwt()` reads them, because roles
/// such as `aurora_telemetry_admin` need not have USAGE on schema `auth`.
macro_rules! is_admin_sql {
    () => {
        "(pg_catalog.pg_has_role(CURRENT_USER, 'aurora_telemetry_admin', 'USAGE')
          OR COALESCE((COALESCE(NULLIF(pg_catalog.current_setting('request.jwt.claim', true), ''),
                                NULLIF(pg_catalog.current_setting('request.jwt.claims', true), ''))::jsonb
                       -> 'app_metadata' -> 'aurora_telemetry_admin') = 'true'::jsonb, false))"
    };
}

/// True when the current role may read every user's figures.
pub fn caller_is_privileged() -> Result<bool> {
    let privileged = plans::get_one::<bool>(
        concat!("SELECT pg_catalog.pg_has_role(CURRENT_USER, 'service_role', 'USAGE') OR ", is_admin_sql!()),
        &[],
    )?;
    Ok(privileged == Some(true))
}

/// True when the caller is an administrator: a member of the role `aurora_telemetry_admin`
/// (superusers are members of every role), or, on Supabase, a signed-in user whose JWT
/// `app_metadata` has `"aurora_telemetry_admin": true`. `app_metadata` is written only
/// through Supabase's admin API, never by the user; `user_metadata` is never consulted.
pub fn caller_is_admin() -> Result<bool> {
    Ok(plans::get_one::<bool>(concat!("SELECT ", is_admin_sql!()), &[])? == Some(true))
}

/// Refuse the call unless the caller is an administrator; `function` names it in the error.
pub fn require_admin(function: &'static str) -> Result<()> {
    if caller_is_admin()? {
        Ok(())
    } else {
        Err(TelemetryError::NotAdmin(function))
    }
}

/// The user whose figures the caller asked for, once the caller is allowed to read them.
pub fn readable_user(requested: Option<Uuid>) -> Result<Uuid> {
    let requested = requested.ok_or(TelemetryError::NullArgument("user_id"))?;
    if caller_is_privileged()? {
        return Ok(requested);
    }
    let me = plans::get_one::<Uuid>("SELECT auth.uid()", &[])?;
    if me == Some(requested) {
        Ok(requested)
    } else {
        Err(TelemetryError::NotYourData)
    }
}
