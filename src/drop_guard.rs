//! A guard against losing the logs by accident: `DROP EXTENSION aurora_telemetry` deletes every
//! member table, `generation_logs` included, so while it holds rows the plain command is
//! refused; `DROP EXTENSION aurora_telemetry CASCADE` says it is meant.
//!
//! An event trigger at `ddl_command_start` sees the command before anything is dropped.
//! Creating event triggers needs a superuser; where the installing role is not one (a
//! managed platform), the guard is skipped with a notice (see sql/guard.sql).

use crate::errors::{OrReport, Result, TelemetryError};
use pgrx::prelude::*;
use std::ffi::CStr;

/// `aurora_telemetry.guard_drop_extension()`, an event trigger function.
#[pg_extern(sql = false)]
fn guard_drop_extension(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: Postgres calls an event trigger function with EventTriggerData as its context;
    // the parse tree is valid for the duration of the call.
    let refused = unsafe { drops_this_extension_without_cascade(fcinfo) };
    if refused {
        check_no_logs().or_report();
    }
}

unsafe fn drops_this_extension_without_cascade(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    let context = (*fcinfo).context;
    if context.is_null() || !pgrx::is_a(context, pg_sys::NodeTag::T_EventTriggerData) {
        return false;
    }
    let tree = (*(context as *mut pg_sys::EventTriggerData)).parsetree;
    if tree.is_null() || !pgrx::is_a(tree, pg_sys::NodeTag::T_DropStmt) {
        return false;
    }
    let stmt = &*(tree as *mut pg_sys::DropStmt);
    if stmt.removeType != pg_sys::ObjectType::OBJECT_EXTENSION || stmt.behavior == pg_sys::DropBehavior::DROP_CASCADE {
        return false;
    }
    let objects = stmt.objects;
    if objects.is_null() {
        return false;
    }
    let cells = std::slice::from_raw_parts((*objects).elements, (*objects).length as usize);
    cells.iter().any(|cell| {
        let node = cell.ptr_value as *mut pg_sys::Node;
        !node.is_null()
            && pgrx::is_a(node, pg_sys::NodeTag::T_String)
            && CStr::from_ptr((*(node as *mut pg_sys::String)).sval).to_bytes() == b"aurora_telemetry"
    })
}

fn check_no_logs() -> Result<()> {
    let rows = Spi::get_one::<i64>("SELECT pg_catalog.count(*) FROM public.generation_logs")?.unwrap_or(0);
    if rows > 0 {
        return Err(TelemetryError::WouldDeleteLogs(rows));
    }
    Ok(())
}
