//! Which rows of `pending_usage_deltas` this transaction staged, and which of them no flush
//! has applied yet: a flush claims its rows by ctid instead of scanning the staging table,
//! which between vacuums holds many dead rows.
//!
//! Rows are noted twice over: by the statement that stages them (its `RETURNING ctid`) and
//! by the deferred trigger that fires for each (its own row), whichever comes first, so that
//! rows staged while constraints are IMMEDIATE are known before their trigger flushes. A
//! subtransaction that rolls back may have undone a flush, which brings its rows back under
//! the same ctids: every row of the transaction then counts as unapplied again, and claiming
//! a row that is in fact gone finds nothing.
//!
//! Rows a REPEATABLE READ or SERIALIZABLE transaction could not apply stay staged when it
//! commits. A flush then claims every staged row instead of only its own (a sweep): the next
//! one of the backend that left them, and one every `staged_sweep_seconds` in every backend.

use pgrx::pg_sys::{self, ItemPointerData};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;

/// A ctid as (block high, block low, offset): hashable, and turned back by [`ctid`].
type Key = (u16, u16, u16);

#[derive(Default)]
struct Staged {
    all: HashSet<Key>,
    unapplied: Vec<ItemPointerData>,
}

thread_local! {
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// When this backend last swept (see [`sweep_due`]).
    static LAST_SWEEP: Cell<Option<i64>> = const { Cell::new(None) };
    /// Set when a transaction of this backend left rows staged.
    static LEFT_STAGED: Cell<bool> = const { Cell::new(false) };
}

fn key(ctid: &ItemPointerData) -> Key {
    (ctid.ip_blkid.bi_hi, ctid.ip_blkid.bi_lo, ctid.ip_posid)
}

fn ctid((bi_hi, bi_lo, ip_posid): Key) -> ItemPointerData {
    ItemPointerData { ip_blkid: pg_sys::BlockIdData { bi_hi, bi_lo }, ip_posid }
}

/// Note a row this transaction staged.
pub fn note(ctid: ItemPointerData) {
    watch_transaction_ends();
    STAGED.with(|staged| {
        let mut staged = staged.borrow_mut();
        if staged.all.insert(key(&ctid)) {
            staged.unapplied.push(ctid);
        }
    });
}

/// Whether some row this transaction staged may not be applied yet.
pub fn any_unapplied() -> bool {
    STAGED.with(|staged| !staged.borrow().unapplied.is_empty())
}

/// The rows not applied yet, now handed to a flush.
pub fn take_unapplied() -> Vec<ItemPointerData> {
    STAGED.with(|staged| std::mem::take(&mut staged.borrow_mut().unapplied))
}

/// Leave the unapplied rows staged: the other firings of this commit need not try again,
/// and this backend's next flush sweeps.
pub fn leave_unapplied() {
    STAGED.with(|staged| staged.borrow_mut().unapplied.clear());
    LEFT_STAGED.with(|left| left.set(true));
}

/// Whether this flush sweeps: after this backend left rows staged, and once `interval_usecs`
/// has passed since its last sweep (counted from its first flush).
pub fn sweep_due(interval_usecs: i64) -> bool {
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let last = LAST_SWEEP.with(|last| {
        let first = last.get().unwrap_or(now);
        last.set(Some(first));
        first
    });
    LEFT_STAGED.with(Cell::get) || now.saturating_sub(last) >= interval_usecs
}

/// A sweep claimed every staged row.
pub fn swept() {
    // SAFETY: reads the clock.
    LAST_SWEEP.with(|last| last.set(Some(unsafe { pg_sys::GetCurrentTimestamp() })));
    LEFT_STAGED.with(|left| left.set(false));
}

fn watch_transaction_ends() {
    if WATCHING.with(Cell::get) {
        return;
    }
    // SAFETY: transaction callbacks may be registered at any time in a backend; they stay
    // registered for its life, which is why it is done once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
    }
    WATCHING.with(|w| w.set(true));
}

/// A transaction's rows are applied at its commit or gone with its rollback.
unsafe extern "C-unwind" fn on_transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    ) {
        STAGED.with(|staged| {
            if let Ok(mut staged) = staged.try_borrow_mut() {
                *staged = Staged::default();
            }
        });
    }
}

unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    _subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        STAGED.with(|staged| {
            if let Ok(mut staged) = staged.try_borrow_mut() {
                staged.unapplied = staged.all.iter().copied().map(ctid).collect();
            }
        });
    }
}
