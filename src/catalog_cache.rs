//! A per-backend copy of the small catalogs that every insert reads: prices, generators and
//! settings. Reading them once instead of with a query per row keeps the insert path short.
//!
//! Postgres' relation-cache invalidations keep the copy true: a statement trigger on each of
//! the three tables ([`catalog_changed`]) queues an invalidation of that table, which every
//! backend receives once the change commits (and the changing transaction at its next
//! command); the callback registered here then drops the copy, and the next reader loads it
//! again.

use crate::errors::{self, OrReport, TelemetryError};
use crate::pricing::{Price, PriceBook};
use crate::settings::Settings;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The catalogs as one consistent copy.
pub struct Catalogs {
    pub prices: PriceBook,
    pub generators: Vec<String>,
    pub settings: Settings,
}

impl Catalogs {
    pub fn is_known_generator(&self, name: &str) -> bool {
        self.generators.binary_search_by(|g| g.as_str().cmp(name)).is_ok()
    }

    /// The price of `generator` in force at `at`.
    pub fn price_at(&self, generator: &str, at: TimestampWithTimeZone) -> errors::Result<Price> {
        if !self.is_known_generator(generator) {
            return Err(TelemetryError::UnknownGenerator {
                name: generator.to_owned(),
                known: self.generators.clone(),
            });
        }
        self.prices.price_at(generator, at).cloned()
    }
}

thread_local! {
    static CACHED: RefCell<Option<Rc<Catalogs>>> = const { RefCell::new(None) };
    /// The tables whose invalidation drops the copy, known once it has been loaded.
    static WATCHED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// Bumped by every relevant invalidation: a copy loaded while one arrived is not kept.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

const WATCHED_TABLES: &str = "
    SELECT pg_catalog.array_agg(c.oid::pg_catalog.int8)
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'aurora_telemetry'::pg_catalog.regnamespace
       AND c.relname IN ('prices', 'generators', 'settings')";

/// The catalogs, loaded on first use after any change.
pub fn get() -> errors::Result<Rc<Catalogs>> {
    if let Some(cached) = CACHED.with(|c| c.borrow().clone()) {
        return Ok(cached);
    }
    register();
    let generation = GENERATION.with(Cell::get);
    let watched = Spi::get_one::<Vec<i64>>(WATCHED_TABLES)?.unwrap_or_default();
    let catalogs = Rc::new(Catalogs {
        prices: PriceBook::load()?,
        generators: crate::generators::known_names()?,
        settings: Settings::load()?,
    });
    WATCHED.with(|w| {
        *w.borrow_mut() = watched.into_iter().filter_map(|oid| u32::try_from(oid).ok()).map(pg_sys::Oid::from).collect()
    });
    if GENERATION.with(Cell::get) == generation {
        CACHED.with(|c| *c.borrow_mut() = Some(Rc::clone(&catalogs)));
    }
    Ok(catalogs)
}

fn register() {
    if REGISTERED.with(Cell::get) {
        return;
    }
    // SAFETY: registering a relcache callback is allowed at any time in a backend; it stays
    // registered for the backend's life, which is why it is done once.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), pg_sys::Datum::from(0)) };
    REGISTERED.with(|r| r.set(true));
}

/// Drops the copy when one of the watched tables (or every relation) is invalidated. It must
/// not touch the catalogs itself: it may run in the middle of other cache work.
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relevant = relid == pg_sys::InvalidOid || WATCHED.with(|w| w.borrow().contains(&relid));
    if relevant {
        GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
        CACHED.with(|c| {
            if let Ok(mut cached) = c.try_borrow_mut() {
                *cached = None;
            }
        });
    }
}

/// AFTER ... FOR EACH STATEMENT trigger on prices, generators and settings: tell every
/// backend (at commit) and this one (at its next command) that its copy is stale.
#[pg_trigger]
fn catalog_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> std::result::Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, std::convert::Infallible> {
    let relid = trigger
        .relid()
        .map_err(|_| TelemetryError::Internal("catalog_changed fired without a relation"))
        .or_report();
    // SAFETY: queues a transactional invalidation message for an existing relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(None)
}
