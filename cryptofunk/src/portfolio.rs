//! The paper-trading book of the order executor: cash, positions, market
//! and limit orders, fills, profit and loss, win rate, Sharpe ratio,
//! drawdown and the circuit breaker. Every collection is bounded.

use std::collections::{BTreeMap, VecDeque};

/// Drawdown past which the breaker trips and orders are refused.
pub const BREAKER_TRIPS_AT: f64 = 0.15;
/// Drawdown under which a tripped breaker closes again.
pub const BREAKER_CLOSES_AT: f64 = 0.10;
/// Trades remembered for `list_trades`.
const MAX_TRADES: usize = 10_000;
/// Resting limit orders at most.
pub const MAX_OPEN_ORDERS: usize = 1_000;
/// Portfolio values remembered for the Sharpe ratio.
const MAX_RETURNS: usize = 1_000;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// One filled trade.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trade {
    /// Order id.
    pub id: u64,
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Quantity.
    pub quantity: f64,
    /// Fill price.
    pub price: f64,
    /// Realised profit of a sell (0 for buys).
    pub realised: f64,
}

impl Trade {
    /// Its value in USD.
    pub fn value(&self) -> f64 {
        self.quantity * self.price
    }
}

/// Why an order was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The breaker is tripped.
    CircuitBreaker,
    /// Not enough cash.
    InsufficientCash,
    /// Nothing to sell.
    NoPosition,
    /// No price known for the symbol yet.
    NoPrice,
    /// Too many resting orders.
    TooManyOrders,
    /// A non-positive amount or price.
    Invalid,
}

impl Refusal {
    /// A short, bounded reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::CircuitBreaker => "circuit_breaker",
            Refusal::InsufficientCash => "insufficient_cash",
            Refusal::NoPosition => "no_position",
            Refusal::NoPrice => "no_price",
            Refusal::TooManyOrders => "too_many_orders",
            Refusal::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Position {
    quantity: f64,
    average_price: f64,
}

#[derive(Debug, Clone)]
struct LimitOrder {
    id: u64,
    symbol: String,
    side: Side,
    value: f64,
    limit: f64,
}

/// What the book is worth, and how it has done.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Cash plus positions at their last prices.
    pub value: f64,
    /// Cash.
    pub cash: f64,
    /// Positions at their last prices.
    pub invested: f64,
    /// Positions held.
    pub positions_open: usize,
    /// Profit and loss since the start (realised and unrealised).
    pub pnl: f64,
    /// Share of closing trades that made money.
    pub win_rate: f64,
    /// Mean over standard deviation of per-mark returns, × √365.
    pub sharpe: f64,
    /// Fall from the peak value, 0–1.
    pub drawdown: f64,
    /// Whether orders are refused.
    pub breaker_tripped: bool,
    /// Resting limit orders.
    pub open_orders: usize,
}

/// The book.
#[derive(Debug)]
pub struct Book {
    start: f64,
    cash: f64,
    positions: BTreeMap<String, Position>,
    prices: BTreeMap<String, f64>,
    orders: Vec<LimitOrder>,
    trades: VecDeque<Trade>,
    next_id: u64,
    peak: f64,
    values: VecDeque<f64>,
    wins: u64,
    closes: u64,
    breaker: bool,
}

impl Book {
    /// A book holding `cash` and nothing else.
    pub fn new(cash: f64) -> Book {
        Book {
            start: cash,
            cash,
            positions: BTreeMap::new(),
            prices: BTreeMap::new(),
            orders: Vec::new(),
            trades: VecDeque::new(),
            next_id: 1,
            peak: cash,
            values: VecDeque::new(),
            wins: 0,
            closes: 0,
            breaker: false,
        }
    }

    /// A new price for `symbol`: marks the book to market, fills resting
    /// limit orders it crosses, and moves the breaker. Returns the fills.
    pub fn mark(&mut self, symbol: &str, price: f64) -> Vec<Trade> {
        if !(price.is_finite() && price > 0.0) {
            return Vec::new();
        }
        self.prices.insert(symbol.to_string(), price);
        let (crossed, resting): (Vec<LimitOrder>, Vec<LimitOrder>) =
            std::mem::take(&mut self.orders).into_iter().partition(|o| {
                o.symbol == symbol
                    && match o.side {
                        Side::Buy => price <= o.limit,
                        Side::Sell => price >= o.limit,
                    }
            });
        self.orders = resting;
        let fills = crossed
            .into_iter()
            .filter_map(|o| self.fill(o.id, &o.symbol, o.side, o.value, price).ok())
            .collect();
        self.revalue();
        fills
    }

    fn revalue(&mut self) {
        let value = self.value();
        self.peak = self.peak.max(value);
        if self.values.len() == MAX_RETURNS {
            self.values.pop_front();
        }
        self.values.push_back(value);
        let drawdown = self.drawdown();
        if drawdown > BREAKER_TRIPS_AT {
            self.breaker = true;
        } else if drawdown < BREAKER_CLOSES_AT {
            self.breaker = false;
        }
    }

    fn value(&self) -> f64 {
        self.cash + self.invested()
    }

    fn invested(&self) -> f64 {
        self.positions
            .iter()
            .map(|(s, p)| p.quantity * self.prices.get(s).copied().unwrap_or(p.average_price))
            .sum()
    }

    fn drawdown(&self) -> f64 {
        if self.peak <= 0.0 {
            return 0.0;
        }
        (1.0 - self.value() / self.peak).max(0.0)
    }

    /// A market order for `value` USD at the last price.
    pub fn market_order(&mut self, symbol: &str, side: Side, value: f64) -> Result<Trade, Refusal> {
        if self.breaker {
            return Err(Refusal::CircuitBreaker);
        }
        let price = *self.prices.get(symbol).ok_or(Refusal::NoPrice)?;
        let id = self.next_id;
        self.next_id += 1;
        let trade = self.fill(id, symbol, side, value, price)?;
        self.revalue();
        Ok(trade)
    }

    /// A limit order resting until a price crosses `limit`; its id.
    pub fn limit_order(
        &mut self,
        symbol: &str,
        side: Side,
        value: f64,
        limit: f64,
    ) -> Result<u64, Refusal> {
        if self.breaker {
            return Err(Refusal::CircuitBreaker);
        }
        if !(value > 0.0 && limit > 0.0 && value.is_finite() && limit.is_finite()) {
            return Err(Refusal::Invalid);
        }
        if self.orders.len() >= MAX_OPEN_ORDERS {
            return Err(Refusal::TooManyOrders);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.orders.push(LimitOrder {
            id,
            symbol: symbol.to_string(),
            side,
            value,
            limit,
        });
        Ok(id)
    }

    /// Cancels a resting order; its symbol and side, if there was one.
    pub fn cancel(&mut self, id: u64) -> Option<(String, Side)> {
        let at = self.orders.iter().position(|o| o.id == id)?;
        let order = self.orders.remove(at);
        Some((order.symbol, order.side))
    }

    fn fill(
        &mut self,
        id: u64,
        symbol: &str,
        side: Side,
        value: f64,
        price: f64,
    ) -> Result<Trade, Refusal> {
        if !(value > 0.0 && value.is_finite()) {
            return Err(Refusal::Invalid);
        }
        let position = self.positions.entry(symbol.to_string()).or_default();
        let (quantity, realised) = match side {
            Side::Buy => {
                if value > self.cash + 1e-9 {
                    return Err(Refusal::InsufficientCash);
                }
                let quantity = value / price;
                let held = position.quantity + quantity;
                position.average_price =
                    (position.quantity * position.average_price + quantity * price) / held;
                position.quantity = held;
                self.cash -= value;
                (quantity, 0.0)
            }
            Side::Sell => {
                if position.quantity <= 0.0 {
                    return Err(Refusal::NoPosition);
                }
                let quantity = (value / price).min(position.quantity);
                let realised = (price - position.average_price) * quantity;
                position.quantity -= quantity;
                self.cash += quantity * price;
                self.closes += 1;
                if realised > 0.0 {
                    self.wins += 1;
                }
                (quantity, realised)
            }
        };
        if self
            .positions
            .get(symbol)
            .is_some_and(|p| p.quantity <= 1e-12)
        {
            self.positions.remove(symbol);
        }
        let trade = Trade {
            id,
            symbol: symbol.to_string(),
            side,
            quantity,
            price,
            realised,
        };
        if self.trades.len() == MAX_TRADES {
            self.trades.pop_front();
        }
        self.trades.push_back(trade.clone());
        Ok(trade)
    }

    /// The most recent trades, newest first.
    pub fn trades(&self, limit: usize) -> Vec<Trade> {
        self.trades.iter().rev().take(limit).cloned().collect()
    }

    /// The held quantity of `symbol` at its last price, in USD.
    pub fn position_value(&self, symbol: &str) -> f64 {
        self.positions
            .get(symbol)
            .map(|p| p.quantity * self.prices.get(symbol).copied().unwrap_or(p.average_price))
            .unwrap_or(0.0)
    }

    /// The book now.
    pub fn snapshot(&self) -> Snapshot {
        let returns: Vec<f64> = self
            .values
            .iter()
            .zip(self.values.iter().skip(1))
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| b / a - 1.0)
            .collect();
        let sharpe = if returns.len() < 2 {
            0.0
        } else {
            let mean = returns.iter().sum::<f64>() / returns.len() as f64;
            let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>()
                / (returns.len() - 1) as f64;
            if var > 0.0 {
                mean / var.sqrt() * 365f64.sqrt()
            } else {
                0.0
            }
        };
        Snapshot {
            value: self.value(),
            cash: self.cash,
            invested: self.invested(),
            positions_open: self.positions.len(),
            pnl: self.value() - self.start,
            win_rate: if self.closes == 0 {
                0.0
            } else {
                self.wins as f64 / self.closes as f64
            },
            sharpe,
            drawdown: self.drawdown(),
            breaker_tripped: self.breaker,
            open_orders: self.orders.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buying_then_selling_higher_is_a_win_and_pnl_follows_prices() {
        let mut b = Book::new(100_000.0);
        assert_eq!(
            b.market_order("BTC-USD", Side::Buy, 1_000.0),
            Err(Refusal::NoPrice)
        );
        b.mark("BTC-USD", 100.0);
        let buy = b.market_order("BTC-USD", Side::Buy, 10_000.0).unwrap();
        assert_eq!(buy.quantity, 100.0);
        b.mark("BTC-USD", 110.0);
        let s = b.snapshot();
        assert!((s.pnl - 1_000.0).abs() < 1e-6, "{s:?}");
        assert_eq!(s.positions_open, 1);
        let sell = b.market_order("BTC-USD", Side::Sell, 1e9).unwrap();
        assert!((sell.realised - 1_000.0).abs() < 1e-6);
        let s = b.snapshot();
        assert_eq!((s.positions_open, s.win_rate), (0, 1.0));
        assert_eq!(
            b.market_order("BTC-USD", Side::Sell, 10.0),
            Err(Refusal::NoPosition)
        );
        assert_eq!(
            b.market_order("BTC-USD", Side::Buy, 1e9),
            Err(Refusal::InsufficientCash)
        );
    }

    #[test]
    fn a_crash_trips_the_breaker_and_recovery_closes_it() {
        let mut b = Book::new(100_000.0);
        b.mark("ETH-USD", 100.0);
        b.market_order("ETH-USD", Side::Buy, 80_000.0).unwrap();
        b.mark("ETH-USD", 75.0);
        let s = b.snapshot();
        assert!((s.drawdown - 0.2).abs() < 1e-9, "{s:?}");
        assert!(s.breaker_tripped);
        assert_eq!(
            b.market_order("ETH-USD", Side::Sell, 10.0),
            Err(Refusal::CircuitBreaker)
        );
        assert_eq!(
            b.limit_order("ETH-USD", Side::Buy, 10.0, 70.0),
            Err(Refusal::CircuitBreaker)
        );
        b.mark("ETH-USD", 87.0);
        assert!(b.snapshot().breaker_tripped, "10.4 % down: still tripped");
        b.mark("ETH-USD", 98.0);
        assert!(!b.snapshot().breaker_tripped);
    }

    #[test]
    fn limit_orders_fill_when_crossed_and_cancel() {
        let mut b = Book::new(1_000.0);
        b.mark("SOL-USD", 10.0);
        let id = b.limit_order("SOL-USD", Side::Buy, 100.0, 9.0).unwrap();
        let other = b.limit_order("SOL-USD", Side::Buy, 100.0, 5.0).unwrap();
        assert!(b.mark("SOL-USD", 9.5).is_empty());
        let fills = b.mark("SOL-USD", 8.9);
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].id, id);
        assert_eq!(b.cancel(other), Some(("SOL-USD".to_string(), Side::Buy)));
        assert_eq!(b.cancel(other), None);
        assert_eq!(b.snapshot().open_orders, 0);
        assert_eq!(
            b.limit_order("SOL-USD", Side::Buy, -1.0, 9.0),
            Err(Refusal::Invalid)
        );
    }
}
