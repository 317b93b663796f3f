//! CSV export of a user's generation logs (`public.export_generation_logs_csv`).
//!
//! RFC 4180: a header line, CRLF line ends, and fields that contain text (generator,
//! error_message, metadata) always in double quotes with inner quotes doubled, so commas,
//! quotes and line breaks survive. SQL NULL is an empty unquoted field and an empty string is
//! `""`, which is how `COPY ... FROM ... (FORMAT csv, HEADER)` tells them apart: the file
//! loads back into a table with `generation_logs`' columns giving identical rows.
//! Timestamps are written in UTC as ISO 8601 (`2026-11-04T09:15:02.123456Z`), which any
//! `DateStyle` reads back as the same instant.

use crate::access;
use crate::errors::{OrReport, Result, TelemetryError};
use pgrx::prelude::*;
use pgrx::Uuid;

/// The columns, in `generation_logs`' order.
pub const HEADER: [&str; 10] = [
    "id",
    "user_id",
    "generator",
    "time_ms",
    "cost",
    "prompt_length",
    "success",
    "error_message",
    "metadata",
    "created_at",
];

/// Which columns are text that must always be quoted (the others are numbers, uuids,
/// booleans and timestamps, which never contain a delimiter, quote or line break).
const QUOTED: [bool; 10] = [false, false, true, false, false, false, false, true, true, false];

const ROWS_SQL: &str = "
    SELECT g.id::text, g.user_id::text, g.generator, g.time_ms::text, g.cost::text,
           g.prompt_length::text, CASE WHEN g.success THEN 'true' ELSE 'false' END,
           g.error_message, g.metadata::text,
           CASE WHEN pg_catalog.isfinite(g.created_at)
                THEN pg_catalog.to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                ELSE g.created_at::text END
      FROM public.generation_logs g
     WHERE g.user_id = $1
       AND g.created_at >= $2
       AND ($3::timestamptz IS NULL OR g.created_at < $3)
     ORDER BY g.created_at, g.id";

/// The most one call returns; larger exports go through `\copy` (see the README).
pub const LIMIT_BYTES: usize = 256 * 1024 * 1024;
const BATCH: i64 = 5000;

/// Append one field, quoted when `quote` (NULL is always empty and unquoted).
pub fn push_field(out: &mut String, value: Option<&str>, quote: bool) {
    match value {
        None => {}
        Some(text) if quote => {
            out.push('"');
            for c in text.chars() {
                if c == '"' {
                    out.push('"');
                }
                out.push(c);
            }
            out.push('"');
        }
        Some(text) => out.push_str(text),
    }
}

/// Append one record and its CRLF.
pub fn push_record(out: &mut String, fields: &[Option<String>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field.as_deref(), QUOTED.get(i).copied().unwrap_or(true));
    }
    out.push_str("\r\n");
}

fn csv(user_id: Uuid, since: Option<TimestampWithTimeZone>, until: Option<TimestampWithTimeZone>) -> Result<String> {
    if let (Some(a), Some(b)) = (since, until) {
        if a.into_inner() > b.into_inner() {
            return Err(TelemetryError::InvalidArgument("since must not be later than until".to_owned()));
        }
    }
    let since = since.unwrap_or_else(TimestampWithTimeZone::negative_infinity);
    let mut out = String::new();
    out.push_str(&HEADER.join(","));
    out.push_str("\r\n");
    Spi::connect(|client| {
        let mut cursor = client.try_open_cursor(ROWS_SQL, &[user_id.into(), since.into(), until.into()])?;
        loop {
            let rows = cursor.fetch(BATCH)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let mut fields = Vec::with_capacity(HEADER.len());
                for column in 1..=HEADER.len() {
                    fields.push(row.get::<String>(column)?);
                }
                push_record(&mut out, &fields);
            }
            if out.len() > LIMIT_BYTES {
                return Err(TelemetryError::ExportTooLarge { limit_mb: LIMIT_BYTES / (1024 * 1024) });
            }
        }
        Ok(out)
    })
}

/// `public.export_generation_logs_csv(since, until, user_id)`: the user's logs with
/// `created_at` in `[since, until)`, oldest first, as one CSV text.
#[pg_extern(sql = false)]
fn export_generation_logs_csv(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
    user_id: Option<Uuid>,
) -> String {
    (|| -> Result<_> {
        let user_id = access::readable_user(user_id)?;
        csv(user_id, since, until)
    })()
    .or_report()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn text_fields_are_quoted_and_nulls_are_empty() {
        let mut out = String::new();
        let fields: Vec<Option<String>> = vec![
            Some("0c2f".into()),
            Some("u".into()),
            Some("Claude".into()),
            Some("12".into()),
            None,
            Some("0".into()),
            Some("false".into()),
            Some("say \"hi\", then\r\nleave".into()),
            Some(String::new()),
            Some("2026-01-01T00:00:00.000000Z".into()),
        ];
        push_record(&mut out, &fields);
        assert_eq!(
            out,
            "0c2f,u,\"Claude\",12,,0,false,\"say \"\"hi\"\", then\r\nleave\",\"\",2026-01-01T00:00:00.000000Z\r\n"
        );
    }
}
