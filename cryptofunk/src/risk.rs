//! Risk arithmetic of the risk-analyzer: value at risk, limit checks and
//! the Kelly criterion.

/// Historical value at risk: the loss not exceeded with `confidence`
/// (e.g. 0.95) over one period, for a position worth `value`, from past
/// period returns. Zero without returns.
pub fn value_at_risk(returns: &[f64], value: f64, confidence: f64) -> f64 {
    if returns.is_empty() {
        return 0.0;
    }
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = (((1.0 - confidence) * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    (-sorted[index]).max(0.0) * value
}

/// Returns between consecutive closes.
pub fn returns(closes: &[f64]) -> Vec<f64> {
    closes
        .windows(2)
        .filter(|w| w[0] != 0.0)
        .map(|w| w[1] / w[0] - 1.0)
        .collect()
}

/// The limits an order is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest order as a share of the portfolio.
    pub max_position_share: f64,
    /// Largest share of the portfolio in positions after the order.
    pub max_exposure: f64,
    /// Largest drawdown at which new buying is allowed.
    pub max_drawdown: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_position_share: 0.35,
            max_exposure: 0.9,
            max_drawdown: 0.15,
        }
    }
}

/// Which limits a buy of `order_value` breaks for a portfolio worth
/// `portfolio_value` with `invested` in positions and `drawdown` from its
/// peak: `position_size`, `exposure`, `drawdown`.
pub fn breaches(
    limits: &Limits,
    order_value: f64,
    portfolio_value: f64,
    invested: f64,
    drawdown: f64,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if portfolio_value <= 0.0 {
        return vec!["exposure"];
    }
    if order_value / portfolio_value > limits.max_position_share {
        out.push("position_size");
    }
    if (invested + order_value) / portfolio_value > limits.max_exposure {
        out.push("exposure");
    }
    if drawdown > limits.max_drawdown {
        out.push("drawdown");
    }
    out
}

/// The Kelly fraction for a win probability and a win/loss payoff ratio,
/// clamped to [0, 1] (never bet against yourself).
pub fn kelly(win_rate: f64, payoff: f64) -> f64 {
    if payoff <= 0.0 {
        return 0.0;
    }
    (win_rate - (1.0 - win_rate) / payoff).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_at_risk_is_the_tail_loss() {
        let r: Vec<f64> = (0..100).map(|i| (i as f64 - 50.0) / 1000.0).collect();
        // The 5th worst of 100 returns from -5 % up: -4.5 %.
        let var = value_at_risk(&r, 10_000.0, 0.95);
        assert!((var - 450.0).abs() < 1e-6, "{var}");
        assert_eq!(value_at_risk(&[0.01, 0.02], 1000.0, 0.95), 0.0);
        assert_eq!(value_at_risk(&[], 1000.0, 0.95), 0.0);
    }

    #[test]
    fn limits_name_what_they_break() {
        let l = Limits::default();
        assert!(breaches(&l, 10.0, 100.0, 0.0, 0.0).is_empty());
        assert_eq!(breaches(&l, 40.0, 100.0, 0.0, 0.0), ["position_size"]);
        assert_eq!(
            breaches(&l, 20.0, 100.0, 80.0, 0.2),
            ["exposure", "drawdown"]
        );
    }

    #[test]
    fn kelly_is_positive_only_with_an_edge() {
        assert!((kelly(0.6, 1.0) - 0.2).abs() < 1e-12);
        assert_eq!(kelly(0.4, 1.0), 0.0);
        assert_eq!(kelly(0.9, 0.0), 0.0);
    }
}
