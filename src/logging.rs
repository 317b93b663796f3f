//! The logging API (the seed's `POST /api/telemetry/log`): `public.log_generation`.
//!
//! It runs as its caller (`service_role` or an administrator) and inserts one row; the
//! BEFORE INSERT trigger validates, redacts and prices it exactly as it does for a plain
//! INSERT, so the two doors cannot disagree. An idempotency key makes retries safe: the
//! same `(user_id, idempotency_key)` returns the first call's id and is counted once. A user
//! with a hard budget that is spent gets an error instead of a logged call that costs money.

use crate::{budgets, plans};
use crate::errors::{OrReport, Result, TelemetryError};
use pgrx::prelude::*;
use crate::metadata::Jsonb;
use pgrx::Uuid;

const INSERT_LOG: &str = "
    INSERT INTO public.generation_logs
        (user_id, generator, time_ms, success, error_message, prompt_length, metadata)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING id";

const EARLIER_CALL: &str = "
    SELECT log_id FROM aurora_telemetry.idempotency_keys
     WHERE user_id = $1 AND idempotency_key = $2";

const CLAIM_KEY: &str = "
    INSERT INTO aurora_telemetry.idempotency_keys (user_id, idempotency_key, log_id)
    VALUES ($1, $2, $3)
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING log_id";

/// `public.log_generation(user_id, generator, time_ms, success, error_message, prompt_length,
/// metadata, idempotency_key) returns uuid`
#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = false)]
fn log_generation(
    user_id: Option<Uuid>,
    generator: Option<&str>,
    time_ms: Option<i32>,
    success: Option<bool>,
    error_message: Option<&str>,
    prompt_length: Option<i32>,
    metadata: Option<pgrx::Internal>,
    idempotency_key: Option<&str>,
) -> Uuid {
    let metadata = Jsonb::from_arg(metadata);
    (|| -> Result<Uuid> {
        let user_id = user_id.ok_or(TelemetryError::NullArgument("user_id"))?;
        let generator = generator.ok_or(TelemetryError::NullArgument("generator"))?;
        let time_ms = time_ms.ok_or(TelemetryError::NullArgument("time_ms"))?;
        let success = success.ok_or(TelemetryError::NullArgument("success"))?;
        let prompt_length = prompt_length.ok_or(TelemetryError::NullArgument("prompt_length"))?;

        Spi::connect_mut(|client| {
            if let Some(key) = idempotency_key {
                let earlier = plans::select(client, EARLIER_CALL, &[user_id.into(), key.into()])?;
                if let Some(row) = earlier.into_iter().next() {
                    return row.get::<Uuid>(1)?.ok_or(TelemetryError::Internal("idempotency key without a log id"));
                }
            }
            budgets::enforce_hard_limit(user_id, generator, time_ms, success, metadata)?;
            let inserted = plans::update_user_table(
                client,
                INSERT_LOG,
                &[
                    user_id.into(),
                    generator.into(),
                    time_ms.into(),
                    success.into(),
                    error_message.into(),
                    prompt_length.into(),
                    Jsonb::arg(metadata),
                ],
            )?;
            let log_id = inserted
                .first()
                .get_one::<Uuid>()?
                .ok_or(TelemetryError::Internal("INSERT returned no id"))?;
            if let Some(key) = idempotency_key {
                // A concurrent call with the same key that committed first wins; failing this
                // one rolls back its row, so the generation is still counted once.
                let claimed = plans::update(client, CLAIM_KEY, &[user_id.into(), key.into(), log_id.into()])?;
                if claimed.is_empty() {
                    return Err(TelemetryError::IdempotencyRace);
                }
            }
            Ok(log_id)
        })
    })()
    .or_report()
}
