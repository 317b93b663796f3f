//! Running a piece of work in a subtransaction whose failure is contained.
//!
//! Used where a failure must not take the surrounding transaction with it: alert evaluation
//! happens while a transaction commits its logged rows, and an error there must cost the
//! alert, never the rows.

use crate::errors::Result;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Run `work` in a subtransaction: committed into the surrounding transaction when it
/// succeeds; rolled back, with its error message returned, when it fails or raises.
pub fn run<F>(work: F) -> std::result::Result<(), String>
where
    F: FnOnce() -> Result<()> + std::panic::UnwindSafe,
{
    // SAFETY: the same sequence as PL/pgSQL's exception blocks: remember the memory context
    // and resource owner, begin, and restore both after release or rollback.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);

        let outcome = PgTryBuilder::new(move || work().map_err(|error| error.to_string()))
            .catch_others(|caught| Err(message_of(&caught)))
            .execute();
        match outcome {
            Ok(()) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        outcome
    }
}

/// The message of a caught Postgres error or Rust panic.
fn message_of(caught: &CaughtError) -> String {
    match caught {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => report.message().to_owned(),
        CaughtError::RustPanic { ereport, .. } => ereport.message().to_owned(),
    }
}
