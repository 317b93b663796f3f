//! What happens to a generation row before it is stored.
//!
//! One BEFORE INSERT row trigger on `public.generation_logs` handles every row, whichever way
//! it arrives (a plain INSERT from PostgREST, COPY, a restore, or `log_generation`), so the
//! rules cannot be bypassed by choosing another door:
//! 1. validate: known user, known generator, no negative durations or lengths;
//! 2. redact: remove the metadata keys listed in the `redacted_metadata_keys` setting;
//! 3. price: a NULL cost is filled from the catalog price in force at `created_at`.
//!
//! The CHECK and foreign key constraints on the table back these rules up.

use crate::errors::{self, ensure_non_negative, OrReport, TelemetryError};
use crate::metadata::{self, Jsonb};
use crate::{generators, plans, pricing, settings};
use pgrx::prelude::*;

#[pg_trigger]
fn prepare_generation_log<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl WhoAllocated>>, std::convert::Infallible> {
    Ok(Some(prepare(trigger).or_report()))
}

fn prepare<'a>(trigger: &'a PgTrigger<'a>) -> errors::Result<PgHeapTuple<'a, AllocatedByRust>> {
    let mut row = trigger
        .new()
        .ok_or(TelemetryError::WrongTriggerUse {
            function: "prepare_generation_log",
            expected: "BEFORE INSERT ... FOR EACH ROW",
        })?
        .into_owned();

    // NULLs in NOT NULL columns are left to the constraints, which name the column.
    if let Some(user_id) = row.get_by_name::<pgrx::Uuid>("user_id")? {
        ensure_user_exists(user_id)?;
    }
    let generator = row.get_by_name::<String>("generator")?;
    let time_ms = row.get_by_name::<i32>("time_ms")?;
    ensure_non_negative("time_ms", time_ms)?;
    ensure_non_negative("prompt_length", row.get_by_name::<i32>("prompt_length")?)?;

    let mut metadata = raw_metadata(trigger)?;
    if let Some(doc) = metadata {
        if let Some(redacted) = metadata::redacted(doc, &settings::redacted_metadata_keys()?)? {
            row.set_by_name("metadata", redacted)?;
            metadata = Some(redacted);
        }
    }

    // Pricing looks the generator up anyway and says when it is unknown; a row that brings
    // its own cost only needs the check.
    let cost = row.get_by_name::<pgrx::AnyNumeric>("cost")?;
    match (cost, generator, time_ms) {
        (None, Some(generator), Some(time_ms)) => {
            let created_at = row.get_by_name::<TimestampWithTimeZone>("created_at")?;
            let success = row.get_by_name::<bool>("success")?.unwrap_or(true);
            let usage = metadata::usage_of(time_ms, metadata)?;
            let price = pricing::price_at(&generator, created_at)?;
            row.set_by_name("cost", pricing::to_numeric(price.cost(&usage, success)?)?)?;
        }
        (_, Some(generator), _) => generators::ensure_known(&generator)?,
        _ => {}
    }
    Ok(row)
}

fn ensure_user_exists(user_id: pgrx::Uuid) -> errors::Result<()> {
    let exists = plans::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1)", &[user_id.into()])?;
    if exists == Some(true) {
        Ok(())
    } else {
        Err(TelemetryError::UnknownUser(user_id.to_string()))
    }
}

/// The new row's `metadata` as a datum, without converting the document.
fn raw_metadata(trigger: &PgTrigger<'_>) -> errors::Result<Option<Jsonb>> {
    let data = trigger.trigger_data();
    // SAFETY: a BEFORE INSERT row trigger's tg_trigtuple is the new row, described by the
    // relation's tuple descriptor; both live until the trigger returns.
    unsafe {
        let tupdesc = (*data.tg_relation).rd_att;
        for index in 0..(*tupdesc).natts as usize {
            let attribute = (*tupdesc).attrs.as_slice((*tupdesc).natts as usize)[index];
            let name = std::ffi::CStr::from_ptr(attribute.attname.data.as_ptr());
            if name.to_bytes() == b"metadata" {
                let attno = std::num::NonZeroUsize::new(index + 1).ok_or(TelemetryError::Internal("attribute 0"))?;
                return Ok(pgrx::heap_getattr_raw(data.tg_trigtuple, attno, tupdesc).map(Jsonb));
            }
        }
    }
    Err(TelemetryError::Internal("generation_logs has no metadata column"))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    const USER: &str = "00000000-0000-4000-8000-000000000001";

    fn add_user() {
        Spi::run_with_args("INSERT INTO auth.users (id) VALUES ($1::uuid)", &[USER.into()])
            .expect("insert test user");
    }

    fn insert(generator: &str, time_ms: i32, prompt_length: i32) {
        Spi::run_with_args(
            "INSERT INTO public.generation_logs (user_id, generator, time_ms, prompt_length)
             VALUES ($1::uuid, $2, $3, $4)",
            &[USER.into(), generator.into(), time_ms.into(), prompt_length.into()],
        )
        .expect("insert generation");
    }

    #[pg_test]
    fn known_generators_are_accepted_with_seed_defaults() {
        add_user();
        for generator in ["Claude", "Imagen-3", "Midjourney"] {
            insert(generator, 1200, 40);
        }
        let (count, all_defaults) = Spi::get_two::<i64, bool>(
            "SELECT count(*), bool_and(success AND created_at = now()) FROM public.generation_logs",
        )
        .expect("count rows");
        assert_eq!(count, Some(3));
        assert_eq!(all_defaults, Some(true));
    }

    #[pg_test]
    fn null_cost_is_priced_and_explicit_cost_is_kept() {
        add_user();
        insert("Imagen-3", 3000, 1);
        Spi::run_with_args(
            "INSERT INTO public.generation_logs (user_id, generator, time_ms, cost) VALUES ($1::uuid, 'Claude', 10, 1.5)",
            &[USER.into()],
        )
        .expect("explicit cost");
        Spi::run_with_args(
            "INSERT INTO public.generation_logs (user_id, generator, time_ms, success) VALUES ($1::uuid, 'Midjourney', 10, false)",
            &[USER.into()],
        )
        .expect("failed call");
        let costs = Spi::get_one::<String>(
            "SELECT string_agg(generator || '=' || cost, ',' ORDER BY generator) FROM public.generation_logs",
        )
        .expect("costs");
        assert_eq!(costs.as_deref(), Some("Claude=1.500000,Imagen-3=0.040000,Midjourney=0.000000"));
    }

    #[pg_test]
    fn reflections_are_removed_at_any_depth() {
        add_user();
        Spi::run_with_args(
            "INSERT INTO public.generation_logs (user_id, generator, time_ms, metadata)
             VALUES ($1::uuid, 'Claude', 10, '{\"vibe\": \"calm\", \"reflection\": \"secret\", \"steps\": [{\"reflection\": \"x\", \"n\": 1}]}')",
            &[USER.into()],
        )
        .expect("insert");
        let stored = Spi::get_one::<pgrx::JsonB>("SELECT metadata FROM public.generation_logs").expect("metadata");
        assert_eq!(stored.map(|m| m.0), Some(serde_json::json!({"vibe": "calm", "steps": [{"n": 1}]})));
    }

    #[pg_test]
    fn a_new_generator_needs_only_catalog_rows() {
        add_user();
        Spi::run("INSERT INTO aurora_telemetry.generators (name, description) VALUES ('Veo-2', 'video')")
            .expect("add generator");
        Spi::run("INSERT INTO aurora_telemetry.prices (generator, effective_from, per_second) VALUES ('Veo-2', '-infinity', 0.5)")
            .expect("add price");
        insert("Veo-2", 9000, 10);
        let cost = Spi::get_one::<String>("SELECT cost::text FROM public.generation_logs").expect("cost");
        assert_eq!(cost.as_deref(), Some("4.500000"));
    }

    #[pg_test(error = "unknown generator \"GPT-9\"")]
    fn unknown_generator_is_rejected() {
        add_user();
        insert("GPT-9", 100, 1);
    }

    #[pg_test(error = "unknown user 00000000-0000-4000-8000-000000000001")]
    fn unknown_user_is_rejected() {
        insert("Claude", 100, 1);
    }

    #[pg_test(error = "time_ms must be zero or greater, got -1")]
    fn negative_time_is_rejected() {
        add_user();
        insert("Claude", -1, 1);
    }

    #[pg_test(error = "prompt_length must be zero or greater, got -5")]
    fn negative_prompt_length_is_rejected() {
        add_user();
        insert("Claude", 10, -5);
    }

    #[pg_test]
    fn known_names_lists_the_shipped_catalog_in_order() {
        let names = crate::generators::known_names().expect("names");
        assert_eq!(names, vec!["Claude", "Imagen-3", "Midjourney"]);
    }
}
