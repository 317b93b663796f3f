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
            Self::UnknownGenerator { .. } | Self::Negative { .. } => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::WrongTriggerUse { .. } => ERRCODE_TRIGGERED_ACTION_EXCEPTION,
            Self::Spi(_) | Self::Datum(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::UnknownGenerator { known, .. } => {
                Some(format!("Known generators: {}.", known.join(", ")))
            }
            _ => None,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
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
