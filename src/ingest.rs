//! What happens to a generation row before it is stored.
//!
//! One BEFORE INSERT row trigger on `public.generation_logs` checks every row, whichever way
//! it arrives (a plain INSERT from PostgREST, COPY, or the logging API), so the rules cannot
//! be bypassed by choosing another door. The CHECK constraints on the table back it up.

use crate::errors::{self, ensure_non_negative, OrReport, TelemetryError};
use crate::generators;
use pgrx::prelude::*;

#[pg_trigger]
fn prepare_generation_log<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, impl WhoAllocated>>, std::convert::Infallible> {
    Ok(Some(prepare(trigger).or_report()))
}

fn prepare<'a>(trigger: &'a PgTrigger<'a>) -> errors::Result<PgHeapTuple<'a, AllocatedByPostgres>> {
    let row = trigger.new().ok_or(TelemetryError::WrongTriggerUse {
        function: "prepare_generation_log",
        expected: "BEFORE INSERT ... FOR EACH ROW",
    })?;

    // NULL generator and time_ms are left to the NOT NULL constraints, which name the column.
    if let Some(generator) = row.get_by_name::<&str>("generator")? {
        generators::ensure_known(generator)?;
    }
    ensure_non_negative("time_ms", row.get_by_name::<i32>("time_ms")?)?;
    ensure_non_negative("prompt_length", row.get_by_name::<i32>("prompt_length")?)?;
    Ok(row)
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
        let (count, all_succeeded) = Spi::get_two::<i64, bool>(
            "SELECT count(*), bool_and(success AND created_at = now()) FROM public.generation_logs",
        )
        .expect("count rows");
        assert_eq!(count, Some(3));
        assert_eq!(all_succeeded, Some(true));
    }

    #[pg_test]
    fn a_new_generator_needs_only_a_catalog_row() {
        add_user();
        Spi::run("INSERT INTO aurora_telemetry.generators (name, description) VALUES ('Veo-2', 'video')")
            .expect("add generator");
        insert("Veo-2", 9000, 10);
    }

    #[pg_test(error = "unknown generator \"GPT-9\"")]
    fn unknown_generator_is_rejected() {
        add_user();
        insert("GPT-9", 100, 1);
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
