//! Pricing: what one generation costs, computed exactly with `rust_decimal` from the price
//! catalog `aurora_telemetry.prices`. No floating point touches money anywhere.
//!
//! A call's cost is its generator's price in force at `created_at`:
//! `per_generation + per_second * time_ms / 1000 + tokens / 10^6 * rate per million + images *
//! per_image`, each term only where the catalog has a rate. Each token count is priced at its
//! own rate: `input_tokens` is the uncached input, as Anthropic's usage object reports it, so
//! cache reads and writes are never also priced as input. A failed call costs 0 unless the
//! price row says failures are billed. The result is rounded half away from zero to 6 decimal
//! places, the scale of `generation_logs.cost`.

use crate::errors::{OrReport, Result, TelemetryError};
use crate::{catalog_cache, generators};
use crate::metadata::{self, Jsonb};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use rust_decimal::{Decimal, RoundingStrategy};

/// Largest value of `numeric(10, 6)`.
const MAX_COST: Decimal = Decimal::from_parts(1_409_065_407, 2, 0, false, 6); // 9999.999999

/// One row of the price catalog.
#[derive(Debug, Clone, Default)]
pub struct Price {
    pub per_generation: Decimal,
    pub per_second: Option<Decimal>,
    pub per_million_input_tokens: Option<Decimal>,
    pub per_million_output_tokens: Option<Decimal>,
    pub per_million_cache_read_tokens: Option<Decimal>,
    pub per_million_cache_write_tokens: Option<Decimal>,
    pub per_image: Option<Decimal>,
    pub bill_failures: bool,
}

/// The billable quantities of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub time_ms: i64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub images: u64,
}

impl Usage {
    /// Quantities from `time_ms` alone (the seed's `calculateCost(generator, timeMs)`).
    pub fn from_time(time_ms: i32) -> Self {
        Usage { time_ms: i64::from(time_ms), ..Usage::default() }
    }
}

impl Price {
    /// The exact cost of one call, rounded to 6 decimal places.
    pub fn cost(&self, usage: &Usage, success: bool) -> Result<Decimal> {
        if !success && !self.bill_failures {
            return Ok(Decimal::new(0, 6));
        }
        let million = Decimal::from(1_000_000u32);
        let terms = [
            (Some(self.per_generation), Decimal::ONE, Decimal::ONE),
            (self.per_second, Decimal::from(usage.time_ms), Decimal::from(1000u32)),
            (self.per_million_input_tokens, Decimal::from(usage.input_tokens), million),
            (self.per_million_output_tokens, Decimal::from(usage.output_tokens), million),
            (self.per_million_cache_read_tokens, Decimal::from(usage.cache_read_tokens), million),
            (self.per_million_cache_write_tokens, Decimal::from(usage.cache_write_tokens), million),
            (self.per_image, Decimal::from(usage.images), Decimal::ONE),
        ];
        let mut total = Decimal::ZERO;
        for (rate, quantity, per) in terms {
            let Some(rate) = rate else { continue };
            let term = rate
                .checked_mul(quantity)
                .and_then(|amount| amount.checked_div(per))
                .ok_or(TelemetryError::CostOverflow)?;
            total = total.checked_add(term).ok_or(TelemetryError::CostOverflow)?;
        }
        let mut cost = total.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
        cost.rescale(6);
        if cost > MAX_COST {
            return Err(TelemetryError::CostOverflow);
        }
        Ok(cost)
    }
}

/// The catalog's rate columns, in the order `price_from_row` reads them.
macro_rules! rate_columns {
    () => {
        "per_generation, per_second, per_million_input_tokens, per_million_output_tokens,
         per_million_cache_read_tokens, per_million_cache_write_tokens, per_image, bill_failures"
    };
}

const ALL_PRICES: &str = concat!(
    "SELECT generator, effective_from, ",
    rate_columns!(),
    " FROM aurora_telemetry.prices ORDER BY generator, effective_from"
);

/// A `Price` from the rate columns of `row`, starting at column `first`.
fn price_from_row(row: &pgrx::spi::SpiHeapTupleData<'_>, first: usize) -> Result<Price> {
    let rate = |offset: usize| -> Result<Option<Decimal>> {
        row.get::<AnyNumeric>(first + offset)?.map(|n| to_decimal(&n)).transpose()
    };
    Ok(Price {
        per_generation: rate(0)?.unwrap_or_default(),
        per_second: rate(1)?,
        per_million_input_tokens: rate(2)?,
        per_million_output_tokens: rate(3)?,
        per_million_cache_read_tokens: rate(4)?,
        per_million_cache_write_tokens: rate(5)?,
        per_image: rate(6)?,
        bill_failures: row.get::<bool>(first + 7)?.unwrap_or(false),
    })
}

/// The catalog price of `generator` in force at `at` (the transaction's start when `None`),
/// from the per-backend copy of the catalog.
pub fn price_at(generator: &str, at: Option<TimestampWithTimeZone>) -> Result<Price> {
    let at = match at {
        Some(at) => at,
        // SAFETY: reads the current transaction's start time, which now() returns.
        None => TimestampWithTimeZone::try_from(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() })
            .map_err(|_| TelemetryError::Internal("transaction start out of range"))?,
    };
    catalog_cache::get()?.price_at(generator, at)
}

/// Why there is no price: an unknown generator, or a known one without a price at `at`.
fn no_price(generator: &str, at: TimestampWithTimeZone) -> TelemetryError {
    match generators::ensure_known(generator) {
        Ok(()) => TelemetryError::NoPrice { generator: generator.to_owned(), at: at.to_string() },
        Err(error) => error,
    }
}

/// The whole catalog in memory, for pricing many rows at once.
pub struct PriceBook {
    /// (generator, effective_from, price), sorted by generator then effective_from.
    entries: Vec<(String, i64, Price)>,
}

impl PriceBook {
    pub fn load() -> Result<Self> {
        Spi::connect(|client| {
            let mut entries = Vec::new();
            for row in client.select(ALL_PRICES, None, &[])? {
                let generator = row.get::<String>(1)?.unwrap_or_default();
                let from = row.get::<TimestampWithTimeZone>(2)?.map_or(i64::MIN, |t| t.into_inner());
                entries.push((generator, from, price_from_row(&row, 3)?));
            }
            Ok(PriceBook { entries })
        })
    }

    /// The latest price of `generator` not after `at`.
    pub fn price_at(&self, generator: &str, at: TimestampWithTimeZone) -> Result<&Price> {
        self.entries
            .iter()
            .filter(|(g, from, _)| g == generator && *from <= at.into_inner())
            .last()
            .map(|(_, _, price)| price)
            .ok_or_else(|| no_price(generator, at))
    }
}

pub fn to_decimal(n: &AnyNumeric) -> Result<Decimal> {
    let text = n.to_string();
    Decimal::from_str_exact(&text).map_err(|_| TelemetryError::NotRepresentable(text))
}

pub fn to_numeric(d: Decimal) -> Result<AnyNumeric> {
    AnyNumeric::try_from(d.to_string().as_str())
        .map_err(|_| TelemetryError::NotRepresentable(d.to_string()))
}

fn required<T>(name: &'static str, value: Option<T>) -> Result<T> {
    value.ok_or(TelemetryError::NullArgument(name))
}

/// `public.calculate_cost(generator text, time_ms integer) returns numeric(10,6)`
#[pg_extern(sql = false)]
fn calculate_cost(generator: Option<&str>, time_ms: Option<i32>) -> AnyNumeric {
    cost_now(generator, time_ms, None).or_report()
}

/// `public.calculate_cost(generator text, time_ms integer, metadata jsonb) returns numeric(10,6)`
#[pg_extern(sql = false)]
fn calculate_cost_with_metadata(
    generator: Option<&str>,
    time_ms: Option<i32>,
    metadata: Option<pgrx::Internal>,
) -> AnyNumeric {
    cost_now(generator, time_ms, Jsonb::from_arg(metadata)).or_report()
}

fn cost_now(generator: Option<&str>, time_ms: Option<i32>, metadata: Option<Jsonb>) -> Result<AnyNumeric> {
    let generator = required("generator", generator)?;
    let time_ms = required("time_ms", time_ms)?;
    crate::errors::ensure_non_negative("time_ms", Some(time_ms))?;
    let usage = metadata::usage_of(time_ms, metadata)?;
    to_numeric(price_at(generator, None)?.cost(&usage, true)?)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("decimal literal")
    }

    fn claude_tokens() -> Price {
        Price {
            per_generation: Decimal::ZERO,
            per_million_input_tokens: Some(d("3")),
            per_million_output_tokens: Some(d("15")),
            per_million_cache_read_tokens: Some(d("0.30")),
            per_million_cache_write_tokens: Some(d("3.75")),
            ..Price::default()
        }
    }

    #[pg_test]
    fn seed_prices_are_exact() {
        for (generator, time_ms, expected) in
            [("Claude", 1500, "0.015"), ("Imagen-3", 3000, "0.04"), ("Midjourney", 5000, "0.06")]
        {
            let cost = Spi::get_one_with_args::<bool>(
                "SELECT public.calculate_cost($1, $2) = $3::numeric AND public.calculate_cost($1, $2)::text = ($3::numeric(10,6))::text",
                &[generator.into(), time_ms.into(), expected.into()],
            )
            .expect("price");
            assert_eq!(cost, Some(true), "{generator}");
        }
    }

    #[pg_test]
    fn cache_tokens_are_priced_at_cache_rates_not_input_rates() {
        let usage = Usage { input_tokens: 1000, output_tokens: 500, cache_read_tokens: 200_000, cache_write_tokens: 10_000, ..Usage::default() };
        // 1000*3 + 500*15 + 200000*0.30 + 10000*3.75 = 3000 + 7500 + 60000 + 37500 = 108000 per million
        assert_eq!(claude_tokens().cost(&usage, true).expect("cost"), d("0.108000"));
    }

    #[pg_test]
    fn failures_are_free_unless_billed() {
        let price = Price { per_generation: d("0.04"), ..Price::default() };
        assert_eq!(price.cost(&Usage::from_time(10), false).expect("cost"), Decimal::ZERO);
        let billed = Price { bill_failures: true, ..price };
        assert_eq!(billed.cost(&Usage::from_time(10), false).expect("cost"), d("0.04"));
    }

    #[pg_test]
    fn per_second_rates_round_half_away_from_zero() {
        let price = Price { per_second: Some(d("0.000001")), ..Price::default() };
        // 1500 ms at 0.000001/s = 0.0000015 -> 0.000002
        assert_eq!(price.cost(&Usage::from_time(1500), true).expect("cost"), d("0.000002"));
    }

    #[pg_test]
    fn costs_beyond_the_column_are_refused() {
        let price = Price { per_image: Some(d("100")), ..Price::default() };
        let usage = Usage { images: 1000, ..Usage::default() };
        assert!(matches!(price.cost(&usage, true), Err(TelemetryError::CostOverflow)));
    }

    #[pg_test(error = "unknown generator \"Dall-E\"")]
    fn unknown_generators_are_an_error_not_zero() {
        Spi::get_one::<AnyNumeric>("SELECT public.calculate_cost('Dall-E', 10)").expect("price");
    }

    #[pg_test]
    fn later_prices_apply_from_their_effective_time() {
        Spi::run("INSERT INTO aurora_telemetry.prices (generator, effective_from, per_generation) VALUES ('Claude', '2030-01-01', 0.02)")
            .expect("new price");
        let before = price_at("Claude", Some(TimestampWithTimeZone::try_from(0i64).expect("ts"))).expect("price");
        assert_eq!(before.per_generation, d("0.015"));
        let after = Spi::get_one::<TimestampWithTimeZone>("SELECT '2031-06-01'::timestamptz").expect("ts");
        assert_eq!(price_at("Claude", after).expect("price").per_generation, d("0.02"));
    }
}
