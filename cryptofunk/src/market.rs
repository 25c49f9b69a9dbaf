//! The market: a deterministic, seeded price path per symbol (no network),
//! with an optional crash. The same seed and tick always give the same
//! prices, so runs and tests are repeatable.

/// The symbols traded.
pub const SYMBOLS: [&str; 3] = ["BTC-USD", "ETH-USD", "SOL-USD"];

/// Starting prices, in the order of [`SYMBOLS`].
const START: [f64; 3] = [60_000.0, 3_000.0, 150.0];

/// A crash: from `at_tick`, prices fall by `per_tick` for `ticks` ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crash {
    /// First tick of the fall.
    pub at_tick: u64,
    /// Share lost per tick (0.05 = 5 %).
    pub per_tick: f64,
    /// How many ticks it lasts.
    pub ticks: u64,
}

impl Crash {
    /// A fall of about 45 % over ten ticks, starting at `at_tick`.
    pub fn severe(at_tick: u64) -> Crash {
        Crash {
            at_tick,
            per_tick: 0.06,
            ticks: 10,
        }
    }
}

/// One candle of the price path (one tick).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candle {
    /// Tick index.
    pub tick: u64,
    /// Open (the previous close).
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
}

/// The price paths of every symbol, computed up to the latest tick asked.
#[derive(Debug, Clone)]
pub struct Market {
    seed: u64,
    crash: Option<Crash>,
    /// Closes per symbol, index = tick.
    closes: Vec<Vec<f64>>,
}

/// splitmix64: a small, well-mixed hash of a counter (deterministic noise).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from `key`.
pub fn unit(key: u64) -> f64 {
    (mix(key) >> 11) as f64 / (1u64 << 53) as f64
}

impl Market {
    /// A market from `seed`, with a crash if given.
    pub fn new(seed: u64, crash: Option<Crash>) -> Market {
        Market {
            seed,
            crash,
            closes: START.iter().map(|p| vec![*p]).collect(),
        }
    }

    /// Index of `symbol` in [`SYMBOLS`].
    pub fn symbol_index(symbol: &str) -> Option<usize> {
        SYMBOLS.iter().position(|s| *s == symbol)
    }

    fn extend_to(&mut self, tick: u64) {
        for (i, closes) in self.closes.iter_mut().enumerate() {
            while (closes.len() as u64) <= tick {
                let t = closes.len() as u64;
                let prev = closes[closes.len() - 1];
                let noise = unit(self.seed ^ mix(t.wrapping_mul(3).wrapping_add(i as u64))) - 0.5;
                // A gentle uptrend with noise (±0.4 %), then the crash.
                let mut change = 0.0015 + noise * 0.008;
                if let Some(c) = self.crash
                    && t >= c.at_tick
                    && t < c.at_tick + c.ticks
                {
                    change = -c.per_tick;
                }
                closes.push(prev * (1.0 + change));
            }
        }
    }

    /// The close of `symbol` at `tick`.
    pub fn price(&mut self, symbol: usize, tick: u64) -> f64 {
        self.extend_to(tick);
        self.closes[symbol][tick as usize]
    }

    /// The last `n` candles of `symbol` up to `tick` (fewer at the start).
    pub fn candles(&mut self, symbol: usize, tick: u64, n: usize) -> Vec<Candle> {
        self.extend_to(tick);
        let closes = &self.closes[symbol];
        let first = (tick as usize + 1).saturating_sub(n).max(1);
        (first..=tick as usize)
            .map(|t| {
                let (open, close) = (closes[t - 1], closes[t]);
                let wick = unit(self.seed ^ mix(t as u64 * 7 + symbol as u64)) * 0.002;
                Candle {
                    tick: t as u64,
                    open,
                    high: open.max(close) * (1.0 + wick),
                    low: open.min(close) * (1.0 - wick),
                    close,
                }
            })
            .collect()
    }

    /// Bid and ask sizes around the price: their imbalance in [-1, 1]
    /// leans with the recent move.
    pub fn order_book(&mut self, symbol: usize, tick: u64) -> (f64, f64) {
        let recent = self.candles(symbol, tick, 5);
        let moved = match (recent.first(), recent.last()) {
            (Some(a), Some(b)) if a.open > 0.0 => (b.close - a.open) / a.open,
            _ => 0.0,
        };
        let noise = unit(self.seed ^ mix(tick * 11 + symbol as u64)) * 20.0;
        let bids = 100.0 + noise + moved * 2_000.0;
        let asks = 100.0 + (20.0 - noise) - moved * 2_000.0;
        (bids.max(1.0), asks.max(1.0))
    }

    /// News sentiment in [-1, 1]: the trend of the last ten ticks plus noise.
    pub fn sentiment(&mut self, symbol: usize, tick: u64) -> f64 {
        let recent = self.candles(symbol, tick, 10);
        let trend = match (recent.first(), recent.last()) {
            (Some(a), Some(b)) if a.open > 0.0 => (b.close - a.open) / a.open * 20.0,
            _ => 0.0,
        };
        let noise = unit(self.seed ^ mix(tick * 13 + symbol as u64)) - 0.5;
        (trend + noise * 0.4).clamp(-1.0, 1.0)
    }

    /// The price on a second venue, a small deterministic spread away.
    pub fn venue_price(&mut self, symbol: usize, tick: u64) -> f64 {
        let spread = (unit(self.seed ^ mix(tick * 17 + symbol as u64)) - 0.5) * 0.004;
        self.price(symbol, tick) * (1.0 + spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_prices_and_another_does_not() {
        let mut a = Market::new(7, None);
        let mut b = Market::new(7, None);
        let mut c = Market::new(8, None);
        assert_eq!(a.price(0, 50), b.price(0, 50));
        assert_ne!(a.price(0, 50), c.price(0, 50));
        assert_eq!(a.candles(1, 20, 5), b.candles(1, 20, 5));
    }

    #[test]
    fn a_crash_takes_about_half_off() {
        let mut calm = Market::new(1, None);
        let mut crashed = Market::new(1, Some(Crash::severe(20)));
        assert_eq!(calm.price(2, 19), crashed.price(2, 19));
        let fall = crashed.price(2, 30) / crashed.price(2, 19);
        assert!((0.5..0.6).contains(&fall), "{fall}");
        assert!(calm.price(2, 30) > crashed.price(2, 30) * 1.5);
    }

    #[test]
    fn candles_are_well_formed() {
        let mut m = Market::new(3, None);
        let candles = m.candles(0, 40, 30);
        assert_eq!(candles.len(), 30);
        for c in &candles {
            assert!(c.low <= c.open.min(c.close) && c.high >= c.open.max(c.close));
        }
        assert_eq!(m.candles(0, 2, 30).len(), 2, "fewer at the start");
        let s = m.sentiment(0, 40);
        assert!((-1.0..=1.0).contains(&s));
    }
}
