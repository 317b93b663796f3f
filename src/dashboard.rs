//! `public.telemetry_dashboard_html`: one self-contained HTML page with inline SVG charts.
//!
//! The page has no script at all, loads nothing (no fonts, images or styles from anywhere),
//! and says so to the browser with a Content-Security-Policy of `default-src 'none'`. Every
//! value on it, including generator names, error messages and alert figures, goes through
//! [`escape`], so nothing a user logged can become markup.
//!
//! Figures come from the rollups (see `analytics`), so they equal the statistics functions
//! and plain SQL over `generation_logs`; latency percentiles come from the merged sketches.

use crate::access;
use crate::analytics::{self, BucketFigures, GeneratorFigures, Scope, Totals, UserFigures};
use crate::errors::{OrReport, Result, TelemetryError};
use pgrx::prelude::*;
use pgrx::Uuid;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::HashMap;
use std::fmt::Write;

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];
const MAX_BUCKETS: i64 = 400;
const LIST_ROWS: i64 = 10;
const TOP_SPENDERS: i64 = 10;

/// Escape text for HTML (element content and quoted attribute values alike).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and line breaks are not allowed in HTML text.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

/// USD with 2 to 6 decimal places, as many as the amount needs.
fn money(d: Decimal) -> String {
    let mut rounded = d.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero).normalize();
    if rounded.scale() < 2 {
        rounded.rescale(2);
    }
    format!("${rounded}")
}

fn ms(d: Decimal) -> String {
    let rounded = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    format!("{rounded} ms")
}

fn f64_of(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that
/// is at least `v`; 1 for nothing.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * exp >= v * (1.0 - 1e-12) {
            return m * exp;
        }
    }
    10.0 * exp
}

fn axis_label(v: f64, money: bool) -> String {
    let text = if v == 0.0 {
        "0".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if money {
        format!("${text}")
    } else {
        text
    }
}

/// One bucket of a stacked bar chart.
struct Column {
    label: String,
    short: String,
    /// (series index, value, the value as shown)
    parts: Vec<(usize, f64, String)>,
    total_text: String,
}

/// A vertical stacked bar chart: one column per bucket, one colour per series.
fn stacked_bars(chart: &str, title: &str, columns: &[Column], series: &[String], money_axis: bool) -> String {
    let (width, height) = (920.0, 260.0);
    let (left, right, top, bottom) = (70.0, 12.0, 12.0, 44.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max_total = columns
        .iter()
        .map(|c| c.parts.iter().map(|p| p.1).sum::<f64>())
        .fold(0.0, f64::max);
    let y_max = nice_ceiling(max_total);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg data-chart="{}" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(chart),
        escape(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = top + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - right,
            left - 6.0,
            y + 4.0,
            escape(&axis_label(v, money_axis))
        );
    }
    let n = columns.len().max(1);
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.78).max(1.0);
    let label_every = n.div_ceil(12).max(1);
    for (i, column) in columns.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = top + plot_h;
        let _ = write!(
            svg,
            r#"<g class="column" data-bucket="{}"><title>{} · total {}</title>"#,
            escape(&column.label),
            escape(&column.label),
            escape(&column.total_text)
        );
        for (series_index, value, shown) in &column.parts {
            if *value <= 0.0 {
                continue;
            }
            let h = plot_h * value / y_max;
            y -= h;
            let name = series.get(*series_index).map(String::as_str).unwrap_or("");
            let _ = write!(
                svg,
                r#"<rect class="bar" data-series="{}" data-value="{}" x="{x:.2}" y="{y:.2}" width="{bar_w:.2}" height="{h:.2}" fill="{}"><title>{} · {}: {}</title></rect>"#,
                escape(name),
                escape(shown),
                PALETTE[series_index % PALETTE.len()],
                escape(&column.label),
                escape(name),
                escape(shown)
            );
        }
        svg.push_str("</g>");
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                left + slot * i as f64 + slot / 2.0,
                height - bottom + 16.0,
                escape(&column.short)
            );
        }
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#8a929c"/>"##,
        width - right,
        top + plot_h,
        top + plot_h
    );
    // legend
    let mut lx = left;
    for (i, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect class="swatch" x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text class="legend" x="{:.1}" y="{:.1}">{}</text>"#,
            height - 16.0,
            PALETTE[i % PALETTE.len()],
            lx + 14.0,
            height - 7.0,
            escape(name)
        );
        lx += 24.0 + 7.5 * name.chars().count() as f64;
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a horizontal bar chart: label, and bars of (value, shown text, colour, class).
struct HRow {
    label: String,
    bars: Vec<(f64, String, &'static str, &'static str)>,
}

fn horizontal_bars(chart: &str, title: &str, rows: &[HRow], scale_max: f64) -> String {
    let bars_per_row = rows.iter().map(|r| r.bars.len()).max().unwrap_or(1).max(1);
    let bar_h = 16.0;
    let row_h = bar_h * bars_per_row as f64 + 14.0;
    let (width, left, right) = (920.0, 150.0, 200.0);
    let height = (row_h * rows.len() as f64 + 10.0).max(40.0);
    let plot_w = width - left - right;
    let scale = if scale_max > 0.0 { scale_max } else { 1.0 };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg data-chart="{}" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(chart),
        escape(title)
    );
    if rows.is_empty() {
        let _ = write!(svg, r#"<text class="empty" x="{left}" y="24">No calls in this range.</text>"#);
    }
    for (i, row) in rows.iter().enumerate() {
        let y0 = 6.0 + row_h * i as f64;
        let _ = write!(
            svg,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + bar_h * bars_per_row as f64 / 2.0 + 4.0,
            escape(&row.label)
        );
        for (j, (value, shown, colour, class)) in row.bars.iter().enumerate() {
            let y = y0 + bar_h * j as f64;
            let w = (plot_w * value / scale).clamp(0.0, plot_w);
            let _ = write!(
                svg,
                r##"<rect class="track" x="{left}" y="{y:.1}" width="{plot_w}" height="{:.1}" fill="#f1f3f5"/><rect class="bar {class}" data-series="{}" data-value="{}" x="{left}" y="{y:.1}" width="{w:.2}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect><text class="value" x="{:.1}" y="{:.1}">{}</text>"##,
                bar_h - 3.0,
                escape(&row.label),
                escape(shown),
                bar_h - 3.0,
                escape(&row.label),
                escape(shown),
                left + plot_w + 8.0,
                y + bar_h - 5.0,
                escape(shown)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Buckets of the chart: start (microseconds), full label and short label.
fn buckets(bucket: &str, since: TimestampWithTimeZone, until: TimestampWithTimeZone) -> Result<Vec<(i64, String, String)>> {
    let (long_format, short_format) = match bucket {
        "month" => ("YYYY-MM", "YYYY-MM"),
        "week" => ("\"week of\" YYYY-MM-DD", "MM-DD"),
        _ => ("YYYY-MM-DD", "MM-DD"),
    };
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT b AT TIME ZONE 'UTC', pg_catalog.to_char(b, $4), pg_catalog.to_char(b, $5)
               FROM pg_catalog.generate_series(
                        pg_catalog.date_trunc($1, $2 AT TIME ZONE 'UTC'),
                        ($3 AT TIME ZONE 'UTC') - interval '1 microsecond',
                        ('1 ' || $1)::interval) AS b",
            None,
            &[bucket.into(), since.into(), until.into(), long_format.into(), short_format.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let start = row.get::<TimestampWithTimeZone>(1)?.ok_or(TelemetryError::Internal("bucket without a start"))?;
            out.push((start.into_inner(), row.get::<String>(2)?.unwrap_or_default(), row.get::<String>(3)?.unwrap_or_default()));
        }
        Ok(out)
    })
}

struct Failure {
    at: String,
    user_id: String,
    generator: String,
    time_ms: i32,
    error_message: String,
}

fn recent_failures(scope: &Scope, since: TimestampWithTimeZone, until: TimestampWithTimeZone) -> Result<Vec<Failure>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT pg_catalog.to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), g.user_id::text,
                    g.generator, g.time_ms, COALESCE(g.error_message, '')
               FROM public.generation_logs g
              WHERE NOT g.success AND g.created_at >= $2 AND g.created_at < $3
                AND ($1::uuid IS NULL OR g.user_id = $1)
              ORDER BY g.created_at DESC, g.id
              LIMIT $4",
            None,
            &[scope.user.into(), since.into(), until.into(), LIST_ROWS.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(Failure {
                at: row.get::<String>(1)?.unwrap_or_default(),
                user_id: row.get::<String>(2)?.unwrap_or_default(),
                generator: row.get::<String>(3)?.unwrap_or_default(),
                time_ms: row.get::<i32>(4)?.unwrap_or(0),
                error_message: row.get::<String>(5)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
}

struct Alert {
    sent_at: String,
    kind: String,
    subject: String,
    period: String,
    window_start: String,
    level: String,
    figures: String,
    resolved_at: Option<String>,
}

/// The latest alerts the caller may read, or None when the caller may not read alerts at all.
fn latest_alerts(scope: &Scope, since: TimestampWithTimeZone, until: TimestampWithTimeZone) -> Result<Option<Vec<Alert>>> {
    let readable = Spi::get_one::<bool>("SELECT pg_catalog.has_table_privilege('aurora_telemetry.alerts', 'SELECT')")?;
    if readable != Some(true) {
        return Ok(None);
    }
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT pg_catalog.to_char(a.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), a.kind,
                    CASE WHEN a.scope = 'user' THEN 'user ' || a.user_id::text ELSE 'generator ' || a.generator END,
                    a.period, pg_catalog.to_char(a.window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    a.level::text, a.figures::text,
                    pg_catalog.to_char(a.resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
               FROM aurora_telemetry.alerts a
              WHERE a.sent_at >= $2 AND a.sent_at < $3
                AND ($1::uuid IS NULL OR (a.scope = 'user' AND a.user_id = $1))
              ORDER BY a.sent_at DESC, a.id DESC
              LIMIT $4",
            None,
            &[scope.user.into(), since.into(), until.into(), LIST_ROWS.into()],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(Alert {
                sent_at: row.get::<String>(1)?.unwrap_or_default(),
                kind: row.get::<String>(2)?.unwrap_or_default(),
                subject: row.get::<String>(3)?.unwrap_or_default(),
                period: row.get::<String>(4)?.unwrap_or_default(),
                window_start: row.get::<String>(5)?.unwrap_or_default(),
                level: row.get::<String>(6)?.unwrap_or_default(),
                figures: row.get::<String>(7)?.unwrap_or_default(),
                resolved_at: row.get::<String>(8)?,
            });
        }
        Ok(Some(out))
    })
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d2b3a;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px}
header p{margin:6px 0 0;color:#c9d3de;font-size:13px}
main{padding:8px 28px 28px;max-width:980px}
section{background:#fff;border:1px solid #e1e5ea;border-radius:8px;margin:16px 0;padding:14px 16px}
h2{font-size:15px;margin:0 0 10px}
.cards{display:flex;gap:12px;flex-wrap:wrap;background:none;border:0;padding:0}
.card{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:10px 14px;min-width:120px}
.card .v{font-size:22px;font-weight:600}
.card .k{font-size:12px;color:#5d6875}
svg{max-width:100%;height:auto;font-size:11px}
svg .axis,svg .legend,svg .value{fill:#5d6875}
svg .label{fill:#1d232b;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff2;vertical-align:top}
th{color:#5d6875;font-weight:600}
td.msg{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,'DejaVu Sans Mono',monospace}
td.num{text-align:right}
.empty{color:#8a929c;font-size:13px}
footer{color:#8a929c;font-size:11px;padding:0 28px 20px}
";

struct Range {
    since: TimestampWithTimeZone,
    until: TimestampWithTimeZone,
    since_text: String,
    until_text: String,
    generated_text: String,
    bucket: &'static str,
}

/// Defaults: `until` now, `since` the UTC midnight 29 days before `until`'s day (30 days of
/// bars). Buckets: days up to 92 days, weeks up to two years, months beyond.
fn resolve_range(since: Option<TimestampWithTimeZone>, until: Option<TimestampWithTimeZone>) -> Result<Range> {
    Spi::connect(|client| {
        let rows = client.select(
            "WITH r AS (
                 SELECT COALESCE($2, pg_catalog.now()) AS until_at,
                        COALESCE($1, pg_catalog.date_trunc('day', COALESCE($2, pg_catalog.now()), 'UTC')
                                     - 29 * interval '24 hours') AS since_at)
             SELECT r.since_at, r.until_at, pg_catalog.isfinite(r.since_at) AND pg_catalog.isfinite(r.until_at),
                    CASE WHEN pg_catalog.isfinite(r.since_at) AND pg_catalog.isfinite(r.until_at)
                         THEN (EXTRACT(epoch FROM r.until_at - r.since_at) / 86400)::float8 END,
                    pg_catalog.to_char(r.since_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'),
                    pg_catalog.to_char(r.until_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'),
                    pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')
               FROM r",
            None,
            &[since.into(), until.into()],
        )?;
        let row = rows.first();
        let since = row.get::<TimestampWithTimeZone>(1)?.ok_or(TelemetryError::Internal("no range start"))?;
        let until = row.get::<TimestampWithTimeZone>(2)?.ok_or(TelemetryError::Internal("no range end"))?;
        if row.get::<bool>(3)? != Some(true) {
            return Err(TelemetryError::InvalidArgument("since and until must be finite timestamps".to_owned()));
        }
        if since.into_inner() > until.into_inner() {
            return Err(TelemetryError::InvalidArgument("since must not be later than until".to_owned()));
        }
        let days = row.get::<f64>(4)?.unwrap_or(0.0);
        let bucket = if days <= 92.0 {
            "day"
        } else if days <= 731.0 {
            "week"
        } else {
            "month"
        };
        Ok(Range {
            since,
            until,
            since_text: row.get::<String>(5)?.unwrap_or_default(),
            until_text: row.get::<String>(6)?.unwrap_or_default(),
            generated_text: row.get::<String>(7)?.unwrap_or_default(),
            bucket,
        })
    })
}

fn card(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, r#"<div class="card"><div class="v">{}</div><div class="k">{}</div></div>"#, escape(value), escape(key));
}

fn render(
    scope: &Scope,
    range: &Range,
    generators: &[GeneratorFigures],
    per_bucket: &[BucketFigures],
    bucket_list: &[(i64, String, String)],
    top: Option<&[UserFigures]>,
    failures: &[Failure],
    alerts: Option<&[Alert]>,
) -> Result<String> {
    let names: Vec<String> = generators.iter().map(|g| g.generator.clone()).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut all = Totals::default();
    for g in generators {
        all.add(&g.totals);
    }

    let subject = match scope.user {
        Some(user) => format!("User {user}"),
        None => "All users".to_owned(),
    };
    let per_word = match range.bucket {
        "week" => "week",
        "month" => "month",
        _ => "day",
    };
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(out, "<title>AI usage · {}</title><style>{STYLE}</style></head><body>", escape(&subject));
    let _ = write!(
        out,
        "<header><h1>AI usage · {}</h1><p>{} to {} · charts per {} (UTC)</p></header><main>",
        escape(&subject),
        escape(&range.since_text),
        escape(&range.until_text),
        per_word
    );

    // Summary cards.
    out.push_str(r#"<section class="cards" id="summary">"#);
    card(&mut out, "generations", &all.generations.to_string());
    card(&mut out, "success rate", &format!("{}%", all.success_rate()));
    card(&mut out, "failed", &all.failed().to_string());
    card(&mut out, "total cost", &money(all.cost));
    card(&mut out, "average latency", &ms(all.average_time_ms()));
    out.push_str("</section>");

    // Per-bucket charts.
    let mut cells: HashMap<(i64, usize), &Totals> = HashMap::new();
    let mut column_totals: HashMap<i64, &Totals> = HashMap::new();
    for b in per_bucket {
        match &b.generator {
            Some(name) => {
                if let Some(&i) = index.get(name.as_str()) {
                    cells.insert((b.bucket.into_inner(), i), &b.totals);
                }
            }
            None => {
                column_totals.insert(b.bucket.into_inner(), &b.totals);
            }
        }
    }
    let mut cost_columns = Vec::new();
    let mut count_columns = Vec::new();
    for (start, label, short) in bucket_list {
        let mut cost_parts = Vec::new();
        let mut count_parts = Vec::new();
        for i in 0..names.len() {
            if let Some(t) = cells.get(&(*start, i)) {
                cost_parts.push((i, f64_of(t.cost), money(t.cost)));
                count_parts.push((i, t.generations as f64, t.generations.to_string()));
            }
        }
        let total = column_totals.get(start).copied().cloned().unwrap_or_default();
        cost_columns.push(Column { label: label.clone(), short: short.clone(), parts: cost_parts, total_text: money(total.cost) });
        count_columns.push(Column {
            label: label.clone(),
            short: short.clone(),
            parts: count_parts,
            total_text: total.generations.to_string(),
        });
    }
    let _ = write!(out, r#"<section id="cost"><h2>Cost per {per_word}</h2>"#);
    out.push_str(&stacked_bars("cost-per-bucket", &format!("Cost per {per_word} by generator"), &cost_columns, &names, true));
    out.push_str("</section>");
    let _ = write!(out, r#"<section id="generations"><h2>Generations per {per_word}, by generator</h2>"#);
    out.push_str(&stacked_bars(
        "generations-per-bucket",
        &format!("Generations per {per_word} by generator"),
        &count_columns,
        &names,
        false,
    ));
    out.push_str("</section>");

    // Success rate and latency per generator.
    let success_rows: Vec<HRow> = generators
        .iter()
        .map(|g| HRow {
            label: g.generator.clone(),
            bars: vec![(
                f64_of(g.totals.success_rate()),
                format!("{}% ({} of {})", g.totals.success_rate(), g.totals.successful, g.totals.generations),
                "#59a14f",
                "success",
            )],
        })
        .collect();
    out.push_str(r#"<section id="success"><h2>Success rate per generator</h2>"#);
    out.push_str(&horizontal_bars("success-rate", "Success rate per generator", &success_rows, 100.0));
    out.push_str("</section>");

    let mut latency_rows = Vec::new();
    let mut latency_max = 0.0f64;
    for g in generators {
        let p50 = g.percentile(0.50)?.unwrap_or_default();
        let p95 = g.percentile(0.95)?.unwrap_or_default();
        latency_max = latency_max.max(f64_of(p95)).max(f64_of(p50));
        latency_rows.push(HRow {
            label: g.generator.clone(),
            bars: vec![
                (f64_of(p50), format!("p50 {}", ms(p50)), "#76b7b2", "p50"),
                (f64_of(p95), format!("p95 {}", ms(p95)), "#4e79a7", "p95"),
            ],
        });
    }
    out.push_str(r#"<section id="latency"><h2>Latency per generator (p50 and p95)</h2>"#);
    out.push_str(&horizontal_bars("latency", "Latency p50 and p95 per generator", &latency_rows, nice_ceiling(latency_max)));
    out.push_str("</section>");

    // Top spenders (administrators' variant).
    if let Some(top) = top {
        out.push_str(r#"<section><h2>Top spenders</h2><table id="top-spenders"><thead><tr><th>#</th><th>user</th><th class="num">generations</th><th class="num">failed</th><th class="num">cost</th><th class="num">average latency</th></tr></thead><tbody>"#);
        for (i, u) in top.iter().enumerate() {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                i + 1,
                escape(&u.user_id.to_string()),
                u.totals.generations,
                u.totals.failed(),
                escape(&money(u.totals.cost)),
                escape(&ms(u.totals.average_time_ms()))
            );
        }
        if top.is_empty() {
            out.push_str(r#"<tr><td colspan="6" class="empty">No calls in this range.</td></tr>"#);
        }
        out.push_str("</tbody></table></section>");
    }

    // Latest alerts.
    out.push_str(r#"<section><h2>Latest alerts</h2>"#);
    match alerts {
        None => out.push_str(r#"<p class="empty" id="latest-alerts">Alerts are not readable with this role.</p>"#),
        Some(alerts) => {
            out.push_str(r#"<table id="latest-alerts"><thead><tr><th>sent (UTC)</th><th>alert</th><th>about</th><th>window</th><th>level</th><th>figures</th><th>status</th></tr></thead><tbody>"#);
            for a in alerts {
                let status = match &a.resolved_at {
                    Some(at) => format!("resolved {at}"),
                    None => "open".to_owned(),
                };
                let _ = write!(
                    out,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{} from {}</td><td>{}</td><td class="msg">{}</td><td>{}</td></tr>"#,
                    escape(&a.sent_at),
                    escape(&a.kind),
                    escape(&a.subject),
                    escape(&a.period),
                    escape(&a.window_start),
                    escape(&a.level),
                    escape(&truncate(&a.figures, 240)),
                    escape(&status)
                );
            }
            if alerts.is_empty() {
                out.push_str(r#"<tr><td colspan="7" class="empty">No alerts in this range.</td></tr>"#);
            }
            out.push_str("</tbody></table>");
        }
    }
    out.push_str("</section>");

    // Recent failures.
    out.push_str(r#"<section><h2>Recent failures</h2><table id="recent-failures"><thead><tr><th>at (UTC)</th>"#);
    if scope.user.is_none() {
        out.push_str("<th>user</th>");
    }
    out.push_str(r#"<th>generator</th><th class="num">time</th><th>error message</th></tr></thead><tbody>"#);
    for f in failures {
        let _ = write!(out, "<tr><td>{}</td>", escape(&f.at));
        if scope.user.is_none() {
            let _ = write!(out, "<td><code>{}</code></td>", escape(&f.user_id));
        }
        let _ = write!(
            out,
            r#"<td>{}</td><td class="num">{} ms</td><td class="msg">{}</td></tr>"#,
            escape(&f.generator),
            f.time_ms,
            escape(&truncate(&f.error_message, 500))
        );
    }
    if failures.is_empty() {
        out.push_str(r#"<tr><td colspan="5" class="empty">No failed calls in this range.</td></tr>"#);
    }
    out.push_str("</tbody></table></section>");

    let _ = write!(
        out,
        "</main><footer>aurora_telemetry · generated {} · figures from the usage rollups; latency percentiles within 1%.</footer></body></html>\n",
        escape(&range.generated_text)
    );
    Ok(out)
}

/// `public.telemetry_dashboard_html(since, until, user_id)`.
#[pg_extern(sql = false)]
fn telemetry_dashboard_html(
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
    user_id: Option<Uuid>,
) -> String {
    (|| -> Result<_> {
        let user = match user_id {
            Some(user) => Some(access::readable_user(Some(user))?),
            None => {
                access::require_admin("telemetry_dashboard_html for all users (user_id NULL)")?;
                None
            }
        };
        let range = resolve_range(since, until)?;
        let scope = Scope::new(user, Some(range.since), Some(range.until))?;
        let bucket_list = buckets(range.bucket, range.since, range.until)?;
        if bucket_list.len() as i64 > MAX_BUCKETS {
            return Err(TelemetryError::InvalidArgument(format!(
                "the range needs {} bars, more than {MAX_BUCKETS}; choose a shorter range",
                bucket_list.len()
            )));
        }
        let generators = analytics::by_generator(&scope)?;
        let per_bucket = analytics::by_bucket(&scope, range.bucket)?;
        let top = match user {
            None => Some(analytics::top_users(&scope, TOP_SPENDERS)?),
            Some(_) => None,
        };
        let failures = recent_failures(&scope, range.since, range.until)?;
        let alerts = latest_alerts(&scope, range.since, range.until)?;
        render(&scope, &range, &generators, &per_bucket, &bucket_list, top.as_deref(), &failures, alerts.as_deref())
    })()
    .or_report()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{fffd}b");
    }

    #[pg_test]
    fn axis_maxima_are_round() {
        for (value, round) in [(0.0, 1.0), (0.013, 0.015), (7.0, 8.0), (2.2, 2.5), (310.0, 400.0), (100.0, 100.0), (118.0, 120.0)] {
            let got = nice_ceiling(value);
            assert!((got - round).abs() < 1e-9 * round, "nice_ceiling({value}) = {got}, expected {round}");
        }
    }

    #[pg_test]
    fn money_keeps_what_matters() {
        assert_eq!(money(Decimal::new(15, 3)), "$0.015");
        assert_eq!(money(Decimal::new(1200, 2)), "$12.00");
        assert_eq!(money(Decimal::ZERO), "$0.00");
    }
}
