//! Every administrator-changeable setting, in one file.
//!
//! Values live in `aurora_telemetry.settings` (name, jsonb value) so that `pg_dump` carries
//! them; a missing row means the default documented here. An administrator changes one with
//!
//! ```sql
//! INSERT INTO aurora_telemetry.settings (name, value) VALUES ('redacted_metadata_keys', '["reflection", "email"]')
//! ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
//! ```
//!
//! A CHECK constraint calls [`setting_is_valid`], so a malformed value is refused when it is
//! written, never discovered later on the insert path.

use crate::errors::Result;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

/// A named setting with its default and a validator for stored values.
pub struct Setting {
    pub name: &'static str,
    default: fn() -> Value,
    valid: fn(&Value) -> bool,
}

/// Metadata keys removed (at any depth) before a generation row is stored, so that personal
/// content such as the user's reflection never lands in telemetry. Default: `["reflection"]`.
pub static REDACTED_METADATA_KEYS: Setting = Setting {
    name: "redacted_metadata_keys",
    default: || Value::from(vec!["reflection"]),
    valid: |v| v.as_array().is_some_and(|keys| keys.iter().all(Value::is_string)),
};

/// All settings, for validation and documentation.
pub static ALL: &[&Setting] = &[&REDACTED_METADATA_KEYS];

impl Setting {
    fn stored(&self) -> Result<Option<Value>> {
        let value = Spi::get_one_with_args::<JsonB>(
            "SELECT (SELECT value FROM aurora_telemetry.settings WHERE name = $1)",
            &[self.name.into()],
        )?;
        Ok(value.map(|v| v.0))
    }

    /// The stored value, or the default when none is stored.
    fn value(&self) -> Result<Value> {
        Ok(self.stored()?.unwrap_or_else(self.default))
    }
}

/// Typed accessor for [`REDACTED_METADATA_KEYS`].
pub fn redacted_metadata_keys() -> Result<Vec<String>> {
    let value = REDACTED_METADATA_KEYS.value()?;
    Ok(value
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Used by the CHECK constraint on `aurora_telemetry.settings`: a known name and a value of
/// the right shape.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn setting_is_valid(name: &str, value: JsonB) -> bool {
    ALL.iter().any(|s| s.name == name && (s.valid)(&value.0))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn defaults_apply_until_an_override_is_stored() {
        assert_eq!(crate::settings::redacted_metadata_keys().expect("read"), vec!["reflection"]);
        Spi::run(
            "INSERT INTO aurora_telemetry.settings (name, value) VALUES ('redacted_metadata_keys', '[\"email\", \"reflection\"]')",
        )
        .expect("store override");
        assert_eq!(
            crate::settings::redacted_metadata_keys().expect("read"),
            vec!["email", "reflection"]
        );
    }

    #[pg_test(error = "new row for relation \"settings\" violates check constraint \"settings_value_valid\"")]
    fn malformed_values_are_refused_on_write() {
        Spi::run("INSERT INTO aurora_telemetry.settings (name, value) VALUES ('redacted_metadata_keys', '\"reflection\"')")
            .expect("refused");
    }

    #[pg_test(error = "new row for relation \"settings\" violates check constraint \"settings_value_valid\"")]
    fn unknown_names_are_refused_on_write() {
        Spi::run("INSERT INTO aurora_telemetry.settings (name, value) VALUES ('no_such_setting', '1')").expect("refused");
    }
}
