//! Every error the extension raises, mapped to its SQLSTATE in one place.
//!
//! Callers see a Postgres error with a proper code, a message that says what was wrong, and a
//! detail or hint that says what is allowed. Internal failures (SPI, datum conversion) keep
//! their own text but are reported as `XX000`, because they mean a bug, not bad input.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::SpiError;
use pgrx::datum::TryFromDatumError;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("unknown generator \"{name}\"")]
    UnknownGenerator { name: String, known: Vec<String> },

    #[error("{column} must be zero or greater, got {value}")]
    Negative { column: &'static str, value: i64 },

    #[error("{function} must be used as a {expected} trigger")]
    WrongTriggerUse { function: &'static str, expected: &'static str },

    #[error("permission denied: an authenticated user may read only their own usage")]
    NotYourData,

    #[error("permission denied: {0} is for administrators only")]
    NotAdmin(&'static str),

    #[error("the export is larger than {limit_mb} MB, the most one call returns")]
    ExportTooLarge { limit_mb: usize },

    #[error("{0}")]
    InvalidArgument(String),

    #[error("another call with the same idempotency key was logged at the same time")]
    IdempotencyRace,

    #[error("budget exhausted: {spent} spent of the {period} hard limit {limit}")]
    BudgetExhausted { period: &'static str, spent: String, limit: String },

    #[error("DROP EXTENSION aurora_telemetry would delete {0} logged generations")]
    WouldDeleteLogs(i64),

    #[error("unknown user {0}")]
    UnknownUser(String),

    #[error("{0} must not be NULL")]
    NullArgument(&'static str),

    #[error("metadata.{key} must be a whole number of zero or more, got {value}")]
    BadMeteredCount { key: &'static str, value: String },

    #[error("cost exceeds the largest storable amount 9999.999999")]
    CostOverflow,

    #[error("no price for generator \"{generator}\" at {at}")]
    NoPrice { generator: String, at: String },

    #[error("value {0} cannot be represented exactly")]
    NotRepresentable(String),

    #[error("internal error: {0}")]
    Internal(&'static str),

    #[error("latency sketch is corrupt: {0}")]
    CorruptSketch(String),

    #[error("internal query failed: {0}")]
    Spi(#[from] SpiError),

    #[error("could not read column: {0}")]
    Datum(#[from] TryFromDatumError),
}

pub type Result<T> = std::result::Result<T, TelemetryError>;

impl TelemetryError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::UnknownGenerator { .. } | Self::Negative { .. } | Self::BadMeteredCount { .. } => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::NotYourData | Self::NotAdmin(_) => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::ExportTooLarge { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Self::InvalidArgument(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::IdempotencyRace => ERRCODE_T_R_SERIALIZATION_FAILURE,
            Self::UnknownUser(_) => ERRCODE_FOREIGN_KEY_VIOLATION,
            Self::WouldDeleteLogs(_) => ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            Self::BudgetExhausted { .. } => ERRCODE_CHECK_VIOLATION,
            Self::CostOverflow | Self::NotRepresentable(_) => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            Self::NoPrice { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::Internal(_) => ERRCODE_INTERNAL_ERROR,
            Self::WrongTriggerUse { .. } => ERRCODE_TRIGGERED_ACTION_EXCEPTION,
            Self::CorruptSketch(_) => ERRCODE_DATA_CORRUPTED,
            Self::Spi(_) | Self::Datum(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::UnknownGenerator { known, .. } => {
                Some(format!("Known generators: {}.", known.join(", ")))
            }
            Self::UnknownUser(_) => Some("user_id must be the id of a row in auth.users.".into()),
            Self::WouldDeleteLogs(_) => Some(
                "Keep them first (pg_dump -t public.generation_logs, or export_generation_logs_csv); DROP EXTENSION aurora_telemetry CASCADE drops them for good."
                    .into(),
            ),
            Self::NoPrice { .. } => Some(
                "Every generator needs a row in aurora_telemetry.prices with effective_from at or before the call.".into(),
            ),
            _ => None,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NullArgument("user_id") => {
                Some("Pass user_id, or call as a user whose JWT sub claim is their id.")
            }
            Self::NotYourData => Some(
                "Omit user_id or pass your own id; service_role and aurora_telemetry_admin may read any user.",
            ),
            Self::NotAdmin(_) => Some(
                "Administrators are members of the role aurora_telemetry_admin, or (Supabase) users whose JWT app_metadata has \"aurora_telemetry_admin\": true.",
            ),
            Self::ExportTooLarge { .. } => Some(
                "Narrow since/until, or stream the rows with psql's \\copy (see the README, CSV export).",
            ),
            Self::IdempotencyRace => Some("Retry the call: it will return the id the other call logged."),
            Self::BudgetExhausted { .. } => Some(
                "Calls that cost nothing are still logged. An administrator can raise the limit in aurora_telemetry.budgets.",
            ),
            Self::UnknownGenerator { .. } => Some(
                "An administrator adds a generator with INSERT INTO aurora_telemetry.generators (name, description).",
            ),
            _ => None,
        }
    }

    /// Raise this error as a Postgres ERROR. Never returns.
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "aurora_telemetry");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// Turn a `Result` into its value, raising the error as a Postgres ERROR.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T> {
    fn or_report(self) -> T {
        self.unwrap_or_else(|error| error.report())
    }
}

/// Reject negative counts and durations with a message naming the column.
pub fn ensure_non_negative(column: &'static str, value: Option<i32>) -> Result<()> {
    match value {
        Some(v) if v < 0 => Err(TelemetryError::Negative { column, value: i64::from(v) }),
        _ => Ok(()),
    }
}
