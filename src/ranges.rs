//! Splitting a time range into rollup buckets plus raw-row edges.
//!
//! A range `[since, until)` is answered from the coarsest complete buckets that fit inside it
//! (months, then days, then hours) and, at each end, the raw rows of the part that is shorter
//! than an hour. So any range costs a few dozen rollup rows and at most two hours of raw rows,
//! however long the history, and the answer is exact. Timestamps are Postgres' own
//! microseconds since 2000-01-01 UTC, with `i64::MIN`/`i64::MAX` as -/+infinity; all buckets
//! are UTC.

use crate::errors::{Result, TelemetryError};
use pgrx::datum::DateTimeParts;
use pgrx::prelude::*;

const USECS_PER_HOUR: i64 = 3_600_000_000;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Hour,
    Day,
    Month,
}

/// Where the figures of one piece come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Rollup(Level),
    Raw,
}

impl Source {
    /// The name used in SQL: the rollup table's `level`, or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rollup(Level::Hour) => "hour",
            Source::Rollup(Level::Day) => "day",
            Source::Rollup(Level::Month) => "month",
            Source::Raw => "raw",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub source: Source,
    pub start: i64,
    pub end: i64,
}

fn finite(t: i64) -> bool {
    t != i64::MIN && t != i64::MAX
}

impl Level {
    const ALL: [Level; 3] = [Level::Hour, Level::Day, Level::Month];

    /// Start of the bucket containing `t` (infinities stay as they are).
    pub fn floor(self, t: i64) -> Result<i64> {
        if !finite(t) {
            return Ok(t);
        }
        match self {
            Level::Hour => Ok(t - t.rem_euclid(USECS_PER_HOUR)),
            Level::Day => Ok(t - t.rem_euclid(USECS_PER_DAY)),
            Level::Month => {
                let ts = TimestampWithTimeZone::try_from(t)
                    .map_err(|_| TelemetryError::Internal("timestamp out of range"))?;
                Ok(ts.truncate_with_time_zone(DateTimeParts::Month, "UTC").into_inner())
            }
        }
    }

    /// Smallest bucket start at or after `t`.
    fn ceil(self, t: i64) -> Result<i64> {
        let floor = self.floor(t)?;
        if floor == t {
            return Ok(t);
        }
        match self {
            Level::Hour => Ok(floor.saturating_add(USECS_PER_HOUR)),
            Level::Day => Ok(floor.saturating_add(USECS_PER_DAY)),
            // Any day 32 days after a month's start lies in the next month.
            Level::Month => self.floor(floor.saturating_add(32 * USECS_PER_DAY)),
        }
    }
}

/// The pieces covering `[since, until)` exactly once, using rollup levels up to `coarsest`.
pub fn plan(since: i64, until: i64, coarsest: Level) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    if since >= until {
        return Ok(pieces);
    }
    let levels: Vec<Level> = Level::ALL.into_iter().filter(|l| *l <= coarsest).collect();
    let (first, last) = (Level::Hour.ceil(since)?, Level::Hour.floor(until)?);
    if first >= last {
        pieces.push(Piece { source: Source::Raw, start: since, end: until });
    } else {
        pieces.push(Piece { source: Source::Raw, start: since, end: first });
        pieces.push(Piece { source: Source::Raw, start: last, end: until });
        aligned(first, last, &levels, &mut pieces)?;
    }
    pieces.retain(|p| p.start < p.end);
    Ok(pieces)
}

/// Cover `[start, end)`, both aligned to `levels[0]`, with the coarsest buckets that fit.
fn aligned(start: i64, end: i64, levels: &[Level], pieces: &mut Vec<Piece>) -> Result<()> {
    let Some((&level, coarser)) = levels.split_first() else {
        return Ok(());
    };
    if let Some(&up) = coarser.first() {
        let (inner_start, inner_end) = (up.ceil(start)?, up.floor(end)?);
        if inner_start < inner_end {
            pieces.push(Piece { source: Source::Rollup(level), start, end: inner_start });
            pieces.push(Piece { source: Source::Rollup(level), start: inner_end, end });
            return aligned(inner_start, inner_end, coarser, pieces);
        }
    }
    pieces.push(Piece { source: Source::Rollup(level), start, end });
    Ok(())
}

/// The pieces as three parallel arrays, the form the statistics queries take them in.
pub fn as_arrays(
    pieces: &[Piece],
) -> Result<(Vec<String>, Vec<TimestampWithTimeZone>, Vec<TimestampWithTimeZone>)> {
    let stamp = |t: i64| {
        TimestampWithTimeZone::try_from(t).map_err(|_| TelemetryError::Internal("timestamp out of range"))
    };
    let mut sources = Vec::with_capacity(pieces.len());
    let mut starts = Vec::with_capacity(pieces.len());
    let mut ends = Vec::with_capacity(pieces.len());
    for piece in pieces {
        sources.push(piece.source.name().to_owned());
        starts.push(stamp(piece.start)?);
        ends.push(stamp(piece.end)?);
    }
    Ok((sources, starts, ends))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        Spi::get_one_with_args::<TimestampWithTimeZone>("SELECT $1::timestamptz", &[text.into()])
            .expect("timestamp")
            .expect("not null")
            .into_inner()
    }

    /// Every piece is aligned to its level, and together they tile [since, until) exactly.
    fn assert_tiles(since: i64, until: i64, coarsest: Level) -> Vec<Piece> {
        let mut pieces = plan(since, until, coarsest).expect("plan");
        pieces.sort_by_key(|p| p.start);
        let mut cursor = since;
        for piece in &pieces {
            assert_eq!(piece.start, cursor, "gap or overlap in {pieces:?}");
            if let Source::Rollup(level) = piece.source {
                assert!(level <= coarsest);
                assert_eq!(level.floor(piece.start).expect("floor"), piece.start);
                assert_eq!(level.floor(piece.end).expect("floor"), piece.end);
            }
            cursor = piece.end;
        }
        assert_eq!(cursor, until.max(since));
        pieces
    }

    #[pg_test]
    fn ranges_tile_exactly_with_coarse_buckets_inside() {
        let (since, until) = (at("2026-01-30 22:15:00+00"), at("2026-04-02 01:30:00+00"));
        let pieces = assert_tiles(since, until, Level::Month);
        let months: Vec<_> = pieces.iter().filter(|p| p.source == Source::Rollup(Level::Month)).collect();
        assert_eq!(months.len(), 1);
        assert_eq!((months[0].start, months[0].end), (at("2026-02-01+00"), at("2026-04-01+00")));
        assert_eq!(pieces.iter().filter(|p| p.source == Source::Raw).count(), 2);

        assert_tiles(since, until, Level::Day);
        assert_tiles(since, until, Level::Hour);
        assert_tiles(at("2026-03-05 10:10+00"), at("2026-03-05 10:50+00"), Level::Month);
        assert_tiles(at("2026-03-05 10:00+00"), at("2026-03-05 11:00+00"), Level::Month);
        assert_tiles(at("2026-12-31 23:59+00"), at("2027-01-01 00:01+00"), Level::Month);
    }

    #[pg_test]
    fn unbounded_ranges_use_whole_months() {
        let pieces = assert_tiles(i64::MIN, i64::MAX, Level::Month);
        assert_eq!(pieces, vec![Piece { source: Source::Rollup(Level::Month), start: i64::MIN, end: i64::MAX }]);
        let since = at("2026-02-10 12:34+00");
        let pieces = assert_tiles(since, i64::MAX, Level::Month);
        assert!(pieces.iter().all(|p| p.source != Source::Raw || p.end <= at("2026-02-10 13:00+00")));
    }

    #[pg_test]
    fn empty_and_reversed_ranges_have_no_pieces() {
        let t = at("2026-02-10 12:34+00");
        assert!(plan(t, t, Level::Month).expect("plan").is_empty());
        assert!(plan(t, t - 1, Level::Month).expect("plan").is_empty());
    }
}
