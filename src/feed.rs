//! The live feed: with the `realtime_feed` setting on, every committed transaction that
//! logged calls sends one `generation_logged` notification per user with its counts, not one
//! per row, so bulk inserts stay cheap for writers and listeners alike.

use crate::alerts::{money, notify};
use crate::errors::Result;
use crate::rollups::Flushed;
use pgrx::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::BTreeMap;

pub fn announce(flushed: &Flushed) -> Result<()> {
    let mut per_user: BTreeMap<String, (i64, i64, Decimal)> = BTreeMap::new();
    for calls in &flushed.calls {
        let entry = per_user.entry(calls.user_id.to_string()).or_default();
        entry.0 += calls.generations;
        entry.1 += calls.successful;
        entry.2 += calls.cost;
    }
    Spi::connect_mut(|client| {
        for (user_id, (generations, successful, cost)) in per_user {
            let payload = json!({
                "user_id": user_id,
                "generations": generations,
                "successful": successful,
                "failed": generations - successful,
                "cost": money(cost),
            });
            notify(client, "generation_logged", payload)?;
        }
        Ok(())
    })
}
