//! Mergeable latency percentiles: a DDSketch over `time_ms`.
//!
//! Rollups keep one sketch per bucket of rows instead of the raw latencies. A sketch counts
//! values in logarithmically spaced buckets, so any percentile read from it is within 1% of the
//! exact `percentile_disc` value, and two sketches combine by adding counts, which is exact:
//! the merge of two sketches is byte for byte the sketch of all their values together. That
//! is what lets rollups add a new row's sketch and subtract a deleted row's.
//!
//! Stored form (`bytea`), every number an LEB128 varint:
//! `version (one byte) | zero count | number of buckets | (key delta, count) per bucket`.
//! Key deltas are zigzag-encoded (a hand-made sketch might carry a negative key, and the
//! decoder must be able to say so); counts are unsigned because a stored count is never
//! negative: one beyond `bigint` is rejected as overflow.

use crate::errors::{OrReport, Result, TelemetryError};
use pgrx::prelude::*;
use std::sync::LazyLock;

/// Relative accuracy of the buckets. Below the promised 1% so that float rounding at a bucket
/// edge (a value landing one bucket off) still stays within 1%.
const ALPHA: f64 = 0.009;
/// Bucket growth factor: bucket `k` holds values in `(GAMMA^(k-1), GAMMA^k]`.
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
const FORMAT_VERSION: u8 = 1;

/// `ln(GAMMA)`, computed once because `f64::ln` is not `const`.
static LN_GAMMA: LazyLock<f64> = LazyLock::new(|| GAMMA.ln());
/// The key of `i32::MAX`: no `time_ms` can land higher, so a stored key above it is corrupt.
static MAX_KEY: LazyLock<i32> = LazyLock::new(|| key_of(i32::MAX.unsigned_abs()));

/// Bucket key of a value of at least 1 ms.
fn key_of(time_ms: u32) -> i32 {
    // At most ~1194 for u32 values of i32 range, so the cast cannot truncate.
    (f64::from(time_ms).ln() / *LN_GAMMA).ceil() as i32
}

/// The value reported for bucket `key`: equally far, relatively, from both bucket edges.
fn representative(key: i32) -> f64 {
    2.0 * (f64::from(key) * *LN_GAMMA).exp() / (GAMMA + 1.0)
}

fn corrupt(message: impl Into<String>) -> TelemetryError {
    TelemetryError::CorruptSketch(message.into())
}

/// A DDSketch of non-negative millisecond latencies.
///
/// Counts are signed `i64` because rollups subtract; every operation keeps them positive
/// (zero-count buckets are removed) and keeps their total within `i64`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySketch {
    /// How many values were exactly 0 ms (their estimate is exact).
    zeros: i64,
    /// Count per bucket key (the index), for values of at least 1 ms: dense, because keys
    /// are few (at most 1195) and merging arrays is what rollups and statistics do most.
    /// Never longer than its last non-zero count, so equal sketches compare equal.
    buckets: Vec<i64>,
    /// `zeros` plus all bucket counts, kept so no later sum can overflow.
    total: i64,
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one latency.
    ///
    /// Takes the column's `i32` and rejects a negative value with the same error the ingest
    /// trigger uses, so callers need no conversion of their own. Also fails, as
    /// `CorruptSketch`, if the total would pass `i64::MAX`, which only a forged sketch can reach.
    pub fn add(&mut self, time_ms: i32) -> Result<()> {
        let value = u32::try_from(time_ms)
            .map_err(|_| TelemetryError::Negative { column: "time_ms", value: i64::from(time_ms) })?;
        self.total = self
            .total
            .checked_add(1)
            .ok_or_else(|| corrupt("adding a value would make the count exceed 9223372036854775807"))?;
        // Each count is at most the total, which just proved it has room for one more.
        if value == 0 {
            self.zeros += 1;
        } else {
            *self.bucket_mut(key_of(value)) += 1;
        }
        Ok(())
    }

    /// Add every count of `other` to this sketch.
    ///
    /// Fails (leaving `self` unchanged) only if the combined count would pass `i64::MAX`, which
    /// real data never reaches; it returns a `Result` so that a forged sketch cannot make the
    /// counts wrap around.
    pub fn merge(&mut self, other: &LatencySketch) -> Result<()> {
        self.total = self
            .total
            .checked_add(other.total)
            .ok_or_else(|| corrupt("merging would make the count exceed 9223372036854775807"))?;
        // Every single count is at most the new total, so none of these additions overflows.
        self.zeros += other.zeros;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        Ok(())
    }

    /// Remove every count of `other` from this sketch (undo a `merge`).
    ///
    /// `other` must be contained in `self`: if any count would go negative, nothing is changed
    /// and a `CorruptSketch` error says which bucket, since it means a rollup is out of step
    /// with its rows.
    pub fn subtract(&mut self, other: &LatencySketch) -> Result<()> {
        // Check everything before changing anything, so a failure leaves `self` intact.
        if other.zeros > self.zeros {
            return Err(corrupt(format!(
                "cannot subtract {} values of 0 ms from a sketch that has {}",
                other.zeros, self.zeros
            )));
        }
        for (key, count) in other.nonempty() {
            let have = self.buckets.get(key as usize).copied().unwrap_or(0);
            if count > have {
                // Bucket k holds (GAMMA^(k-1), GAMMA^k]; the range tells a reader which
                // latencies are out of step.
                let upper = (f64::from(key) * *LN_GAMMA).exp();
                return Err(corrupt(format!(
                    "cannot subtract {count} values between {:.0} and {upper:.0} ms (bucket {key}) from a sketch that has {have}",
                    upper / GAMMA
                )));
            }
        }
        self.zeros -= other.zeros;
        self.total -= other.total;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine -= theirs;
        }
        // Trailing empty buckets are dropped so equal sketches stay equal.
        let used = self.buckets.iter().rposition(|&count| count != 0).map_or(0, |last| last + 1);
        self.buckets.truncate(used);
        Ok(())
    }

    /// The count of bucket `key` (at most `MAX_KEY`), for writing.
    fn bucket_mut(&mut self, key: i32) -> &mut i64 {
        let index = key.unsigned_abs() as usize;
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, 0);
        }
        &mut self.buckets[index]
    }

    /// (key, count) of every bucket that holds values, in key order.
    fn nonempty(&self) -> impl DoubleEndedIterator<Item = (i32, i64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &count)| count != 0)
            .map(|(key, &count)| (key as i32, count))
    }

    /// Number of values counted.
    pub fn count(&self) -> i64 {
        self.total
    }

    /// The value at quantile `q`, within 1% of what
    /// `percentile_disc(q) WITHIN GROUP (ORDER BY time_ms)` returns for the same values.
    ///
    /// `None` when the sketch is empty or `q` is not in `[0, 1]` (NaN included); SQL callers
    /// check `q` first to raise a proper error.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.total <= 0 {
            return None;
        }
        // Same arithmetic as percentile_disc: the ceil(q * n)-th value, 1-based, at least the
        // first. The clamp guards against rounding past n for counts beyond 2^53.
        let rank = ((q * self.total as f64).ceil() as i64).clamp(1, self.total);
        let mut seen = self.zeros;
        if seen >= rank {
            return Some(0.0);
        }
        for (key, count) in self.nonempty() {
            seen += count;
            if seen >= rank {
                return Some(representative(key));
            }
        }
        // Unreachable while total equals the sum of counts; answer with the largest bucket.
        self.nonempty().last().map(|(key, _)| representative(key))
    }

    /// The compact stored form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let used = self.nonempty().count();
        let mut out = Vec::with_capacity(3 + 3 * used);
        out.push(FORMAT_VERSION);
        // Counts are never negative, so unsigned_abs is the value itself.
        put_varint(&mut out, self.zeros.unsigned_abs());
        put_varint(&mut out, used as u64);
        let mut previous = 0i64;
        for (key, count) in self.nonempty() {
            put_varint(&mut out, zigzag(i64::from(key) - previous));
            put_varint(&mut out, count.unsigned_abs());
            previous = i64::from(key);
        }
        out
    }

    /// Read the stored form, rejecting anything `to_bytes` could not have produced.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader { bytes, position: 0 };
        let version = reader.byte("version")?;
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "unknown format version {version} (expected {FORMAT_VERSION})"
            )));
        }
        let zeros = reader.count("count of 0 ms values")?;
        let bucket_count = reader.varint("number of buckets")?;
        // Keys are distinct and within 0..=MAX_KEY; the bound also stops a forged length from
        // making us loop for long.
        let max_buckets = u64::from(MAX_KEY.unsigned_abs()) + 1;
        if bucket_count > max_buckets {
            return Err(corrupt(format!(
                "claims {bucket_count} buckets, but at most {max_buckets} are possible"
            )));
        }
        let mut sketch = LatencySketch { zeros, buckets: Vec::new(), total: zeros };
        let mut previous = 0i64;
        for index in 0..bucket_count {
            let delta = unzigzag(reader.varint("bucket key")?);
            if index > 0 && delta <= 0 {
                return Err(corrupt(format!("bucket keys are not increasing after key {previous}")));
            }
            let key = previous
                .checked_add(delta)
                .ok_or_else(|| corrupt("bucket key overflows"))?;
            let key = i32::try_from(key)
                .ok()
                .filter(|key| (0..=*MAX_KEY).contains(key))
                .ok_or_else(|| {
                    corrupt(format!("bucket key {key} is outside 0..{}", *MAX_KEY))
                })?;
            let count = reader.count("bucket count")?;
            if count == 0 {
                return Err(corrupt(format!("bucket {key} has a count of zero")));
            }
            sketch.total = sketch
                .total
                .checked_add(count)
                .ok_or_else(|| corrupt("total count exceeds 9223372036854775807"))?;
            *sketch.bucket_mut(key) = count;
            previous = i64::from(key);
        }
        if reader.position != bytes.len() {
            return Err(corrupt(format!(
                "{} trailing bytes after the last bucket",
                bytes.len() - reader.position
            )));
        }
        Ok(sketch)
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over untrusted bytes; every failure names what was being read.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn byte(&mut self, what: &str) -> Result<u8> {
        let byte = self.bytes.get(self.position).copied().ok_or_else(|| {
            corrupt(format!("truncated: input ends at byte {} while reading the {what}", self.position))
        })?;
        self.position += 1;
        Ok(byte)
    }

    fn varint(&mut self, what: &str) -> Result<u64> {
        let mut value = 0u64;
        // A u64 needs at most 10 groups of 7 bits, and the 10th may only hold the top bit.
        for group in 0..10u32 {
            let byte = self.byte(what)?;
            if group == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * group);
            if byte & 0x80 == 0 {
                // A final zero group adds nothing: accepting it would give one sketch two
                // stored forms, and merged sketches must compare equal byte for byte.
                if byte == 0 && group > 0 {
                    return Err(corrupt(format!("over-long varint in the {what}")));
                }
                return Ok(value);
            }
        }
        Err(corrupt(format!("the {what} overflows 64 bits")))
    }

    fn count(&mut self, what: &str) -> Result<i64> {
        let value = self.varint(what)?;
        i64::try_from(value)
            .map_err(|_| corrupt(format!("the {what} {value} exceeds 9223372036854775807")))
    }
}

/// Decode an argument, treating SQL NULL as an empty sketch.
fn decode_or_empty(bytes: Option<&[u8]>) -> Result<LatencySketch> {
    bytes.map_or_else(|| Ok(LatencySketch::new()), LatencySketch::from_bytes)
}

/// Shared body of `sketch_merge` and `sketch_subtract`: NULL counts as empty, both NULL gives
/// NULL, and even a lone argument is decoded so corrupt input never passes through unnoticed.
fn combine(
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    operation: fn(&mut LatencySketch, &LatencySketch) -> Result<()>,
) -> Result<Option<Vec<u8>>> {
    if a.is_none() && b.is_none() {
        return Ok(None);
    }
    let mut left = decode_or_empty(a)?;
    operation(&mut left, &decode_or_empty(b)?)?;
    Ok(Some(left.to_bytes()))
}

/// The sketch of an array of latencies; NULL elements are skipped and a NULL array gives an
/// empty sketch. A negative latency is an error, as it is in `generation_logs`.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn latency_sketch(time_ms: Option<Vec<Option<i32>>>) -> Vec<u8> {
    let mut sketch = LatencySketch::new();
    for value in time_ms.into_iter().flatten().flatten() {
        sketch.add(value).or_report();
    }
    sketch.to_bytes()
}

/// Both sketches together. Not strict, so it can be the transition function of
/// `sketch_union`: NULL counts as empty, and two NULLs give NULL.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn sketch_merge(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Vec<u8>> {
    combine(a, b, LatencySketch::merge).or_report()
}

/// `a` without the values of `b`; an error if `b` holds values `a` does not. NULL counts as
/// empty, and two NULLs give NULL.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn sketch_subtract(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Vec<u8>> {
    combine(a, b, LatencySketch::subtract).or_report()
}

/// How many latencies the sketch holds.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn sketch_count(sketch: &[u8]) -> i64 {
    LatencySketch::from_bytes(sketch).or_report().count()
}

/// The latency at quantile `q` (0 to 1), within 1% of `percentile_disc(q)`; NULL for an empty
/// sketch.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn sketch_quantile(sketch: &[u8], q: f64) -> Option<f64> {
    // Checked before decoding so a bad q is reported even for an empty sketch.
    if !(0.0..=1.0).contains(&q) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("quantile must be between 0 and 1, got {q}")
        );
    }
    LatencySketch::from_bytes(sketch).or_report().quantile(q)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::{LatencySketch, MAX_KEY};
    use crate::errors::TelemetryError;
    use pgrx::prelude::*;

    const QUANTILES: [f64; 8] = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0];
    const SEEDS: [u64; 5] = [1, 2, 3, 0xdead_beef, 20_240_601];

    /// xorshift64*: deterministic, so a failure reproduces from its seed.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            // The all-zero state is a fixed point; mixing in a constant avoids it.
            Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform in lo..=hi.
        fn between(&mut self, lo: i32, hi: i32) -> i32 {
            let span = (i64::from(hi) - i64::from(lo) + 1) as u64;
            (i64::from(lo) + (self.next() % span) as i64) as i32
        }

        /// Roughly log-normal around `median`, clamped to lo..=hi.
        fn log_normal(&mut self, median: f64, sigma: f64, lo: i32, hi: i32) -> i32 {
            // Sum of 12 uniforms minus 6 is close enough to a standard normal here.
            let z: f64 = (0..12).map(|_| self.unit()).sum::<f64>() - 6.0;
            ((median.ln() + sigma * z).exp().round() as i64).clamp(i64::from(lo), i64::from(hi)) as i32
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Shape {
        Uniform,
        LogNormal,
        ManyZeros,
        Single,
        WithMax,
        LogUniformWide,
    }

    const SHAPES: [Shape; 6] = [
        Shape::Uniform,
        Shape::LogNormal,
        Shape::ManyZeros,
        Shape::Single,
        Shape::WithMax,
        Shape::LogUniformWide,
    ];

    fn values(shape: Shape, seed: u64, n: usize) -> Vec<i32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| match shape {
                Shape::Uniform => rng.between(1, 10_000),
                Shape::LogNormal => rng.log_normal(3_000.0, 1.5, 50, 600_000),
                Shape::ManyZeros if rng.unit() < 0.7 => 0,
                Shape::ManyZeros => rng.between(1, 2_000),
                Shape::Single => 4_242,
                Shape::WithMax if rng.unit() < 0.3 => i32::MAX,
                Shape::WithMax => rng.between(0, 1_000_000),
                Shape::LogUniformWide => (600_000f64.ln() * rng.unit()).exp().round() as i32,
            })
            .collect()
    }

    fn sketch_of(values: &[i32]) -> LatencySketch {
        let mut sketch = LatencySketch::new();
        for &value in values {
            sketch.add(value).expect("non-negative value");
        }
        sketch
    }

    /// percentile_disc computed the slow way: the ceil(q * n)-th smallest value.
    fn exact(sorted: &[i32], q: f64) -> i32 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    fn assert_within_one_percent(estimate: f64, exact: i32, context: &str) {
        let exact = f64::from(exact);
        assert!(
            (estimate - exact).abs() <= 0.01 * exact,
            "{context}: estimate {estimate} is not within 1% of {exact}"
        );
    }

    fn assert_accurate(values: &[i32], context: &str) {
        let sketch = sketch_of(values);
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        assert_eq!(sketch.count(), values.len() as i64, "{context}: count");
        for q in QUANTILES {
            let estimate = sketch.quantile(q).expect("non-empty sketch");
            assert_within_one_percent(estimate, exact(&sorted, q), &format!("{context}, q = {q}"));
        }
    }

    fn corrupt_message(bytes: &[u8]) -> String {
        match LatencySketch::from_bytes(bytes) {
            Err(TelemetryError::CorruptSketch(message)) => message,
            other => panic!("{bytes:?} was not rejected as corrupt: {other:?}"),
        }
    }

    fn varint(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        super::put_varint(&mut out, value);
        out
    }

    #[pg_test]
    fn sketch_is_within_one_percent_on_random_shapes() {
        for shape in SHAPES {
            for seed in SEEDS {
                for n in [1, 7, 100, 5_000] {
                    assert_accurate(&values(shape, seed, n), &format!("{shape:?}, seed {seed}, n {n}"));
                }
            }
        }
        assert_accurate(&[i32::MAX], "i32::MAX alone");
        assert_accurate(&[0], "0 alone");
        assert_accurate(&[1, 2, 3], "smallest values");
        // Every integer of a wide range, so every bucket edge up there is crossed.
        assert_accurate(&(0..=200_000).collect::<Vec<_>>(), "0..=200000");
    }

    #[pg_test]
    fn sketch_matches_postgres_percentile_disc() {
        for shape in SHAPES {
            let values = values(shape, 42, 2_000);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            for q in QUANTILES {
                // Postgres' own answer next to the SQL functions' estimate, from the same array.
                let (postgres, estimate) = Spi::get_two_with_args::<i32, f64>(
                    "SELECT pg_catalog.percentile_disc($2) WITHIN GROUP (ORDER BY v),
                            aurora_telemetry.sketch_quantile(aurora_telemetry.latency_sketch($1), $2)
                       FROM pg_catalog.unnest($1) AS v",
                    &[values.clone().into(), q.into()],
                )
                .expect("percentile query");
                let postgres = postgres.expect("percentile_disc of a non-empty set");
                let context = format!("{shape:?}, q = {q}");
                assert_eq!(postgres, exact(&sorted, q), "{context}: rank definition differs from Postgres");
                assert_within_one_percent(estimate.expect("non-empty sketch"), postgres, &context);
                assert_eq!(estimate, sketch_of(&values).quantile(q), "{context}: SQL and Rust disagree");
            }
        }
    }

    #[pg_test]
    fn sketch_merge_equals_sketch_of_all_values() {
        for shape in SHAPES {
            for seed in SEEDS {
                let left = values(shape, seed, 3_000);
                let right = values(Shape::LogNormal, seed + 100, 1_000);
                let mut merged = sketch_of(&left);
                merged.merge(&sketch_of(&right)).expect("merge");
                let all = [left.as_slice(), right.as_slice()].concat();
                assert_eq!(merged.to_bytes(), sketch_of(&all).to_bytes(), "{shape:?}, seed {seed}");
                assert_eq!(merged.count(), all.len() as i64);
            }
        }
    }

    #[pg_test]
    fn sketch_subtract_undoes_merge() {
        for seed in SEEDS {
            let a = sketch_of(&values(Shape::ManyZeros, seed, 2_000));
            let b = sketch_of(&values(Shape::LogNormal, seed, 2_000));
            let mut both = a.clone();
            both.merge(&b).expect("merge");
            both.subtract(&b).expect("subtract");
            assert_eq!(both, a);
            assert_eq!(both.to_bytes(), a.to_bytes());
            both.subtract(&a).expect("subtract everything");
            assert_eq!(both, LatencySketch::new());
            assert_eq!(both.count(), 0);
            assert_eq!(both.quantile(0.5), None);
        }
    }

    #[pg_test]
    fn sketch_subtract_refuses_to_go_negative() {
        let a = sketch_of(&[0, 100, 100]);
        let mut target = a.clone();
        let error = target.subtract(&sketch_of(&[100, 100, 100])).expect_err("more than present");
        assert!(
            matches!(&error, TelemetryError::CorruptSketch(m) if m.contains("cannot subtract 3 values between 99 and 100 ms (bucket 256)")),
            "{error}"
        );
        let error = target.subtract(&sketch_of(&[0, 0])).expect_err("more zeros than present");
        assert!(matches!(&error, TelemetryError::CorruptSketch(m) if m.contains("0 ms")), "{error}");
        let error = target.subtract(&sketch_of(&[5_000])).expect_err("bucket not present");
        assert!(matches!(error, TelemetryError::CorruptSketch(_)));
        assert_eq!(target, a, "a failed subtraction changes nothing");
    }

    #[pg_test]
    fn sketch_round_trips_through_bytes() {
        for shape in SHAPES {
            for seed in SEEDS {
                let sketch = sketch_of(&values(shape, seed, 1_000));
                let bytes = sketch.to_bytes();
                assert_eq!(LatencySketch::from_bytes(&bytes).expect("decode"), sketch);
            }
        }
        let empty = LatencySketch::new();
        assert_eq!(empty.to_bytes(), vec![1, 0, 0]);
        assert_eq!(LatencySketch::from_bytes(&[1, 0, 0]).expect("empty"), empty);
        assert_eq!(empty.quantile(0.5), None);
    }

    #[pg_test]
    fn sketch_quantile_rejects_bad_q_in_rust() {
        let sketch = sketch_of(&[1, 2, 3]);
        for q in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(sketch.quantile(q), None, "q = {q}");
        }
    }

    #[pg_test]
    fn sketch_keys_cover_i32_range() {
        // Fixed by ALPHA; a change means stored sketches would no longer decode.
        assert_eq!(*MAX_KEY, 1_194);
        assert_eq!(super::key_of(1), 0);
        assert!(LatencySketch::from_bytes(&sketch_of(&[i32::MAX]).to_bytes()).is_ok());
    }

    #[pg_test]
    fn sketch_rejects_negative_values() {
        let error = LatencySketch::new().add(-1).expect_err("negative");
        assert!(matches!(error, TelemetryError::Negative { column: "time_ms", value: -1 }));
    }

    #[pg_test]
    fn sketch_rejects_corrupt_input() {
        let over_max_key = [vec![1, 0, 1], varint(super::zigzag(1_195)), vec![1]].concat();
        let huge_count = [vec![1, 0, 1, 0], varint(u64::MAX)].concat();
        let max = varint(i64::MAX as u64);
        let total_overflow = [vec![1, 0, 2, 0], max.clone(), vec![2], max].concat();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "truncated: input ends at byte 0 while reading the version"),
            (vec![2, 0, 0], "unknown format version 2"),
            (vec![1], "truncated: input ends at byte 1 while reading the count of 0 ms values"),
            (vec![1, 0], "while reading the number of buckets"),
            (vec![1, 0, 1], "while reading the bucket key"),
            (vec![1, 0, 1, 2], "while reading the bucket count"),
            (vec![1, 0, 1, 2, 0x85], "while reading the bucket count"),
            (vec![1, 0, 0, 0], "1 trailing bytes"),
            (vec![1, 0, 1, 2, 1, 7], "1 trailing bytes"),
            (vec![1, 0, 2, 2, 1, 0, 1], "bucket keys are not increasing after key 1"),
            (vec![1, 0, 2, 4, 1, 1, 1], "bucket keys are not increasing after key 2"),
            (vec![1, 0, 1, 2, 0], "bucket 1 has a count of zero"),
            (vec![1, 0, 1, 1, 1], "bucket key -1 is outside 0..1194"),
            (over_max_key, "bucket key 1195 is outside 0..1194"),
            ([vec![1, 0], varint(5_000), vec![0, 1]].concat(), "claims 5000 buckets, but at most 1195 are possible"),
            (vec![1, 0x80, 0x00, 0], "over-long varint in the count of 0 ms values"),
            ([vec![1], vec![0xff; 10], vec![0]].concat(), "the count of 0 ms values overflows 64 bits"),
            (huge_count, "the bucket count 18446744073709551615 exceeds 9223372036854775807"),
            (total_overflow, "total count exceeds 9223372036854775807"),
        ];
        for (bytes, expected) in cases {
            let message = corrupt_message(&bytes);
            assert!(message.contains(expected), "{bytes:?}: got {message:?}, expected {expected:?}");
        }
    }

    #[pg_test]
    fn sketch_merge_refuses_to_overflow() {
        let max = varint(i64::MAX as u64);
        let full = LatencySketch::from_bytes(&[vec![1], max, vec![0]].concat()).expect("decode");
        let mut target = full.clone();
        let error = target.merge(&sketch_of(&[1])).expect_err("overflow");
        assert!(matches!(error, TelemetryError::CorruptSketch(_)));
        assert_eq!(target, full, "a failed merge changes nothing");
        assert!(target.add(0).is_err());
    }

    #[pg_test]
    fn sketch_stays_small() {
        let mut sizes = Vec::new();
        for (label, data) in [
            ("100k log-normal 50 ms..10 min", values(Shape::LogNormal, 7, 100_000)),
            ("100k log-uniform 1 ms..10 min", values(Shape::LogUniformWide, 7, 100_000)),
            ("1000 log-uniform 1 ms..10 min", values(Shape::LogUniformWide, 7, 1_000)),
            ("every integer 1..=600000", (1..=600_000).collect()),
        ] {
            let bytes = sketch_of(&data).to_bytes();
            sizes.push(format!("{label}: {} bytes", bytes.len()));
            assert!(bytes.len() < 2_048, "{label}: {} bytes", bytes.len());
        }
        pgrx::info!("sketch sizes: {}", sizes.join("; "));
    }

    #[pg_test]
    fn sketch_sql_functions_and_union() {
        let chunks: Vec<Vec<i32>> = (0..6).map(|seed| values(Shape::LogNormal, seed, 500)).collect();
        let all = chunks.concat();
        let expected = sketch_of(&all);
        let sketches: Vec<Option<Vec<u8>>> = chunks
            .iter()
            .map(|chunk| Some(sketch_of(chunk).to_bytes()))
            .chain([None])
            .collect();

        let union = Spi::get_one_with_args::<Vec<u8>>(
            "SELECT aurora_telemetry.sketch_union(s) FROM pg_catalog.unnest($1::bytea[]) AS s",
            &[sketches.clone().into()],
        )
        .expect("union");
        assert_eq!(union, Some(expected.to_bytes()));

        let (count, median) = Spi::get_two_with_args::<i64, f64>(
            "SELECT aurora_telemetry.sketch_count(aurora_telemetry.sketch_union(s)),
                    aurora_telemetry.sketch_quantile(aurora_telemetry.sketch_union(s), 0.5)
               FROM pg_catalog.unnest($1::bytea[]) AS s",
            &[sketches.into()],
        )
        .expect("count and median");
        assert_eq!(count, Some(all.len() as i64));
        assert_eq!(median, expected.quantile(0.5));

        // The array form builds the same bytes; NULL elements and a NULL array are skipped.
        let with_nulls: Vec<Option<i32>> = all.iter().copied().map(Some).chain([None]).collect();
        let built = Spi::get_one_with_args::<Vec<u8>>(
            "SELECT aurora_telemetry.latency_sketch($1)",
            &[with_nulls.into()],
        )
        .expect("latency_sketch");
        assert_eq!(built, Some(expected.to_bytes()));
        let empty = Spi::get_one::<Vec<u8>>("SELECT aurora_telemetry.latency_sketch(NULL)").expect("empty");
        assert_eq!(empty, Some(vec![1, 0, 0]));

        let (count, quantile) = Spi::get_two::<i64, f64>(
            "SELECT aurora_telemetry.sketch_count(s), aurora_telemetry.sketch_quantile(s, 0.5)
               FROM aurora_telemetry.latency_sketch('{}'::int[]) AS s",
        )
        .expect("empty sketch");
        assert_eq!((count, quantile), (Some(0), None));

        // Merge and subtract treat NULL as empty; both NULL stays NULL; no rows in the
        // aggregate gives NULL.
        let (both_null, one_null, back) = Spi::get_three_with_args::<Vec<u8>, Vec<u8>, Vec<u8>>(
            "SELECT aurora_telemetry.sketch_merge(NULL, NULL),
                    aurora_telemetry.sketch_merge($1, NULL),
                    aurora_telemetry.sketch_subtract(aurora_telemetry.sketch_merge($1, $2), $2)",
            &[sketch_of(&chunks[0]).to_bytes().into(), sketch_of(&chunks[1]).to_bytes().into()],
        )
        .expect("null handling");
        let no_rows = Spi::get_one::<Vec<u8>>(
            "SELECT aurora_telemetry.sketch_union(s) FROM pg_catalog.unnest('{}'::bytea[]) AS s",
        )
        .expect("union of no rows");
        assert_eq!(both_null, None);
        assert_eq!(one_null, Some(sketch_of(&chunks[0]).to_bytes()));
        assert_eq!(back, Some(sketch_of(&chunks[0]).to_bytes()));
        assert_eq!(no_rows, None);
    }

    #[pg_test]
    fn sketch_sql_errors_carry_their_sqlstate() {
        // Called directly (not through SPI), so the raised error is caught as a Rust panic
        // and the transaction stays usable.
        let caught = |f: fn()| {
            PgTryBuilder::new(|| {
                f();
                None
            })
            .catch_others(|error| match error {
                pg_sys::panic::CaughtError::ErrorReport(report)
                | pg_sys::panic::CaughtError::PostgresError(report) => {
                    Some((report.sql_error_code(), report.message().to_owned()))
                }
                pg_sys::panic::CaughtError::RustPanic { ereport, .. } => {
                    Some((ereport.sql_error_code(), ereport.message().to_owned()))
                }
            })
            .execute()
        };
        assert_eq!(
            caught(|| {
                super::sketch_quantile(&[1, 0, 0], 1.5);
            }),
            Some((
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "quantile must be between 0 and 1, got 1.5".to_owned()
            ))
        );
        assert_eq!(
            caught(|| {
                super::sketch_count(&[9]);
            }),
            Some((
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                "latency sketch is corrupt: unknown format version 9 (expected 1)".to_owned()
            ))
        );
    }

    #[pg_test(error = "quantile must be between 0 and 1, got NaN")]
    fn sketch_quantile_rejects_nan_from_sql() {
        Spi::run("SELECT aurora_telemetry.sketch_quantile(aurora_telemetry.latency_sketch('{1}'), 'NaN')")
            .expect("raises");
    }

    #[pg_test(error = "latency sketch is corrupt: 1 trailing bytes after the last bucket")]
    fn sketch_corrupt_bytes_are_rejected_from_sql() {
        Spi::run("SELECT aurora_telemetry.sketch_merge('\\x01000000'::bytea, NULL)").expect("raises");
    }

    #[pg_test(error = "time_ms must be zero or greater, got -5")]
    fn sketch_negative_latency_is_rejected_from_sql() {
        Spi::run("SELECT aurora_telemetry.latency_sketch('{1, -5}')").expect("raises");
    }

    #[pg_test(error = "latency sketch is corrupt: cannot subtract 1 values between 99 and 100 ms (bucket 256) from a sketch that has 0")]
    fn sketch_subtract_too_much_from_sql() {
        Spi::run(
            "SELECT aurora_telemetry.sketch_subtract(aurora_telemetry.latency_sketch('{1}'),
                                                      aurora_telemetry.latency_sketch('{100}'))",
        )
        .expect("raises");
    }
}
