//! The `metadata` column, read and rewritten by Postgres itself.
//!
//! Metadata can be any valid `jsonb`: megabytes long, nested thousands of levels deep.
//! Converting whole documents into Rust values would be slow for large ones and fail (or
//! exhaust the stack) for deep ones, so documents stay Postgres datums: the few top-level
//! counts that pricing needs are read with `->`/`->>`, the search for redacted keys is a
//! `jsonpath` query, and the rare rewrite is a SQL function. All of these check the stack
//! depth as Postgres does and fail with a clear error at worst.

use crate::errors::{Result, TelemetryError};
use crate::pricing::Usage;
use crate::plans;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{direct_function_call, pg_sys, IntoDatum};
use rust_decimal::Decimal;
use std::str::FromStr;

/// A `jsonb` datum passed through untouched.
#[derive(Clone, Copy)]
pub struct Jsonb(pub pg_sys::Datum);

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

impl Jsonb {
    /// A `jsonb` argument, declared in Rust as `Internal` so that pgrx hands over the datum
    /// instead of converting the document (the SQL declaration says `jsonb`).
    pub fn from_arg(arg: Option<pgrx::Internal>) -> Option<Jsonb> {
        arg.and_then(pgrx::Internal::unwrap).map(Jsonb)
    }

    pub fn arg(doc: Option<Jsonb>) -> DatumWithOid<'static> {
        match doc {
            Some(doc) => doc.into(),
            None => DatumWithOid::null_oid(pg_sys::JSONBOID),
        }
    }

    /// A document from its text, allocated in the current memory context.
    fn from_text(text: &str) -> Result<Jsonb> {
        let text = std::ffi::CString::new(text).map_err(|_| TelemetryError::Internal("jsonb text with a NUL byte"))?;
        // SAFETY: jsonb_in reads the C string and returns a new datum in the current context.
        let datum = unsafe { direct_function_call::<pg_sys::Datum>(pg_sys::jsonb_in, &[text.as_c_str().into_datum()]) };
        datum.map(Jsonb).ok_or(TelemetryError::Internal("jsonb_in returned NULL"))
    }
}

/// The billable counts' keys, in the order [`METERED`] reads them.
pub const METERED_KEYS: [&str; 5] =
    ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "images"];

/// For a document `$doc`: the JSON type and text of each metered key, ten columns.
macro_rules! metered_fields {
    ($doc:literal) => {
        concat!(
            "pg_catalog.jsonb_typeof(", $doc, " -> 'input_tokens'), ", $doc, " ->> 'input_tokens', ",
            "pg_catalog.jsonb_typeof(", $doc, " -> 'output_tokens'), ", $doc, " ->> 'output_tokens', ",
            "pg_catalog.jsonb_typeof(", $doc, " -> 'cache_read_tokens'), ", $doc, " ->> 'cache_read_tokens', ",
            "pg_catalog.jsonb_typeof(", $doc, " -> 'cache_write_tokens'), ", $doc, " ->> 'cache_write_tokens', ",
            "pg_catalog.jsonb_typeof(", $doc, " -> 'images'), ", $doc, " ->> 'images'"
        )
    };
}
pub(crate) use metered_fields;

const METERED: &str = concat!("SELECT ", metered_fields!("$1"));

/// The usage of a call from `time_ms` and ten columns of [`metered_fields`] starting at
/// `first`. Absent or null keys count as 0; anything else must be a whole number >= 0.
pub fn usage_from_row(time_ms: i32, row: &pgrx::spi::SpiHeapTupleData<'_>, first: usize) -> Result<Usage> {
    let mut counts = [0u64; 5];
    for (index, key) in METERED_KEYS.iter().enumerate() {
        let kind = row.get::<String>(first + 2 * index)?;
        let text = row.get::<String>(first + 2 * index + 1)?;
        counts[index] = match (kind.as_deref(), text) {
            (None | Some("null"), _) => 0,
            (Some("number"), Some(text)) => whole_count(key, &text)?,
            (_, text) => return Err(bad_count(key, text.as_deref().unwrap_or(""))),
        };
    }
    let [input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, images] = counts;
    Ok(Usage {
        time_ms: i64::from(time_ms),
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        images,
    })
}

fn bad_count(key: &'static str, text: &str) -> TelemetryError {
    let mut shown: String = text.chars().take(60).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    TelemetryError::BadMeteredCount { key, value: shown }
}

/// A JSON number that must be a whole number >= 0 (1200.0 counts as 1200).
fn whole_count(key: &'static str, text: &str) -> Result<u64> {
    let exact = Decimal::from_str(text).or_else(|_| Decimal::from_scientific(text)).map_err(|_| bad_count(key, text))?;
    if exact.is_sign_negative() || !exact.fract().is_zero() {
        return Err(bad_count(key, text));
    }
    exact.trunc().to_string().parse().map_err(|_| bad_count(key, text))
}

/// The usage of one call whose metadata is `doc`.
pub fn usage_of(time_ms: i32, doc: Option<Jsonb>) -> Result<Usage> {
    let Some(doc) = doc else {
        return Ok(Usage::from_time(time_ms));
    };
    Spi::connect(|client| {
        let rows = plans::select(client, METERED, &[doc.into()])?;
        usage_from_row(time_ms, &rows.first().get_heap_tuple()?.ok_or(TelemetryError::Internal("no row"))?, 1)
    })
}

const HAS_ANY_KEY: &str = "
    SELECT EXISTS (
        SELECT 1 FROM unnest($2::text[]) AS k(key)
         WHERE pg_catalog.jsonb_path_exists(
                   $1, 'strict $.** ? (@.type() == \"object\").keyvalue() ? (@.key == $k)',
                   pg_catalog.jsonb_build_object('k', k.key)))";

const WITHOUT_KEYS: &str = "SELECT aurora_telemetry.jsonb_without_keys($1, $2)::text";

/// `doc` without `keys` at any depth, or `None` when none of them occurs.
pub fn redacted(doc: Jsonb, keys: &[String]) -> Result<Option<Jsonb>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let found = plans::get_one::<bool>(HAS_ANY_KEY, &[doc.into(), keys.to_vec().into()])?;
    if found != Some(true) {
        return Ok(None);
    }
    let text = Spi::get_one_with_args::<String>(WITHOUT_KEYS, &[doc.into(), keys.to_vec().into()])?
        .ok_or(TelemetryError::Internal("redaction returned NULL"))?;
    Jsonb::from_text(&text).map(Some)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn doc(text: &str) -> Option<Jsonb> {
        Some(Jsonb::from_text(text).expect("jsonb"))
    }

    #[pg_test]
    fn counts_must_be_whole_and_non_negative() {
        let usage = usage_of(5, doc(r#"{"input_tokens": 12, "images": 2.0, "output_tokens": null, "x": [1]}"#)).expect("usage");
        assert_eq!((usage.input_tokens, usage.images, usage.output_tokens), (12, 2, 0));
        for bad in [r#"{"input_tokens": -1}"#, r#"{"images": 1.5}"#, r#"{"output_tokens": "12"}"#, r#"{"images": {"a": 1}}"#] {
            assert!(usage_of(5, doc(bad)).is_err(), "{bad}");
        }
    }

    #[pg_test]
    fn deep_documents_are_searched_and_rewritten_by_postgres() {
        let deep = format!("{}{{\"reflection\": \"x\", \"k\": 1}}{}", "[".repeat(500), "]".repeat(500));
        let keys = vec!["reflection".to_owned()];
        let rewritten = redacted(Jsonb::from_text(&deep).expect("jsonb"), &keys).expect("redact").expect("changed");
        let text = Spi::get_one_with_args::<String>("SELECT $1::text", &[rewritten.into()]).expect("text");
        assert_eq!(text, Some(format!("{}{{\"k\": 1}}{}", "[".repeat(500), "]".repeat(500))));
        assert!(redacted(Jsonb::from_text(r#"{"a": ["reflection"]}"#).expect("jsonb"), &keys).expect("redact").is_none());
    }
}
