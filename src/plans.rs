//! The statements on the hot paths (every logged call, every commit, every statistics call),
//! planned once per backend instead of on every execution.
//!
//! `client.select(sql, ...)` parses, analyzes and plans its statement each time; for the short
//! statements that logging and statistics run, planning is most of their cost. Here each
//! statement is prepared on first use, kept for the life of the backend (`SPI_keepplan`) and
//! executed with its arguments. Postgres' plan cache replans a kept plan by itself whenever an
//! object it uses changes, is dropped or is created again, so a kept plan is never stale.
//!
//! Only statements whose text is a constant are kept (`&'static str`), and a plan is kept per
//! text and argument types, so the same text called with other types gets a plan of its own.
//!
//! They always run their generic plan, planned without sequential scans where an index or a
//! ctid can answer:
//! - Left to choose, Postgres plans a parameterized statement anew at every execution whenever
//!   its generic plan looks costlier than the custom ones, as it does for the `ctid = ANY ($1)`
//!   lookups of the rollup flush, whose array it cannot size; planning would then cost more
//!   than running.
//! - Every kept statement reads a few rows by key. A plan made while a table was small scans
//!   it whole, and keeps doing so as it grows: the staging table, empty after a vacuum, holds
//!   thousands of dead rows a minute later under steady logging.

use crate::errors::Result;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

type Key = (&'static str, Vec<pg_sys::Oid>, bool);

thread_local! {
    static KEPT: RefCell<HashMap<Key, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// The planner settings of the kept statements while it lives: set around each execution
/// (where a plan is made or remade), restored when it ends, also when it fails (a Postgres
/// error unwinds through here as a panic).
struct KeyedPlans {
    plan_cache_mode: std::ffi::c_int,
    enable_seqscan: bool,
}

impl KeyedPlans {
    fn begin() -> Self {
        // SAFETY: plain GUC variables, read by the planner and when a cached plan is chosen.
        unsafe {
            let previous = KeyedPlans { plan_cache_mode: pg_sys::plan_cache_mode, enable_seqscan: pg_sys::enable_seqscan };
            pg_sys::plan_cache_mode = pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as std::ffi::c_int;
            pg_sys::enable_seqscan = false;
            previous
        }
    }
}

impl Drop for KeyedPlans {
    fn drop(&mut self) {
        // SAFETY: restores the values read in `begin`.
        unsafe {
            pg_sys::plan_cache_mode = self.plan_cache_mode;
            pg_sys::enable_seqscan = self.enable_seqscan;
        }
    }
}

fn kept(client: &SpiClient<'_>, sql: &'static str, args: &[DatumWithOid<'_>], mutating: bool) -> Result<Rc<OwnedPreparedStatement>> {
    let key: Key = (sql, args.iter().map(DatumWithOid::oid).collect(), mutating);
    if let Some(plan) = KEPT.with(|kept| kept.borrow().get(&key).cloned()) {
        return Ok(plan);
    }
    let types: Vec<PgOid> = key.1.iter().copied().map(PgOid::from).collect();
    let prepared = if mutating { client.prepare_mut(sql, &types)? } else { client.prepare(sql, &types)? };
    let plan = Rc::new(prepared.keep());
    KEPT.with(|kept| kept.borrow_mut().insert(key, Rc::clone(&plan)));
    Ok(plan)
}

/// Run a read-only statement through its kept plan.
///
/// Once the transaction has written anything, the statement runs as a read-write one, with a
/// fresh snapshot that sees those writes: read-only SPI statements reuse the active snapshot,
/// which inside a subtransaction (alert evaluation) would miss what the commit-time flush
/// just wrote in its parent.
pub fn select<'conn>(client: &SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid<'_>]) -> Result<SpiTupleTable<'conn>> {
    // SAFETY: reads the top-level transaction's id, InvalidTransactionId until it writes.
    let has_written = unsafe { pg_sys::GetTopTransactionIdIfAny() } != pg_sys::InvalidTransactionId;
    let plan = kept(client, sql, args, has_written)?;
    let _planner = KeyedPlans::begin();
    Ok(client.select(&*plan, None, args)?)
}

/// Run a statement that writes through its kept plan. Never with a row limit: SPI stops a
/// limited statement early, and the AFTER statement triggers of a write would not run.
pub fn update<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid<'_>]) -> Result<SpiTupleTable<'conn>> {
    let plan = kept(client, sql, args, true)?;
    let _planner = KeyedPlans::begin();
    Ok(client.update(&*plan, None, args)?)
}

/// Run a write into `public.generation_logs` through its kept plan, under the caller's own
/// planner settings: the statements of any trigger the application put on that table run
/// inside it, and they are the application's to plan.
pub fn update_user_table<'conn>(
    client: &mut SpiClient<'conn>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> Result<SpiTupleTable<'conn>> {
    let plan = kept(client, sql, args, true)?;
    Ok(client.update(&*plan, None, args)?)
}

/// The first column of the first row of a read-only statement (`None` for no row or NULL).
pub fn get_one<T: pgrx::FromDatum + pgrx::IntoDatum>(sql: &'static str, args: &[DatumWithOid<'_>]) -> Result<Option<T>> {
    pgrx::Spi::connect(|client| {
        let rows = select(client, sql, args)?;
        match rows.into_iter().next() {
            Some(row) => Ok(row.get::<T>(1)?),
            None => Ok(None),
        }
    })
}
