//! Technical indicators over closes (and highs and lows for ADX), as the
//! technical-indicators tool server computes them. `None` when there are
//! too few points.

/// Exponential moving average of `values` over `period` (seeded with the
/// first value), the last value.
pub fn ema(values: &[f64], period: usize) -> Option<f64> {
    ema_series(values, period).last().copied()
}

fn ema_series(values: &[f64], period: usize) -> Vec<f64> {
    if period == 0 || values.is_empty() {
        return Vec::new();
    }
    let k = 2.0 / (period as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    let mut current = values[0];
    for v in values {
        current = v * k + current * (1.0 - k);
        out.push(current);
    }
    out
}

/// Relative strength index (Wilder) over `period`, 0–100.
pub fn rsi(closes: &[f64], period: usize) -> Option<f64> {
    if period == 0 || closes.len() <= period {
        return None;
    }
    let changes: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let mut gain = changes[..period].iter().filter(|c| **c > 0.0).sum::<f64>() / period as f64;
    let mut loss = -changes[..period].iter().filter(|c| **c < 0.0).sum::<f64>() / period as f64;
    for c in &changes[period..] {
        gain = (gain * (period as f64 - 1.0) + c.max(0.0)) / period as f64;
        loss = (loss * (period as f64 - 1.0) + (-c).max(0.0)) / period as f64;
    }
    if loss == 0.0 {
        return Some(100.0);
    }
    Some(100.0 - 100.0 / (1.0 + gain / loss))
}

/// MACD (12, 26, 9): (line, signal, histogram).
pub fn macd(closes: &[f64]) -> Option<(f64, f64, f64)> {
    if closes.len() < 26 {
        return None;
    }
    let fast = ema_series(closes, 12);
    let slow = ema_series(closes, 26);
    let line: Vec<f64> = fast.iter().zip(&slow).map(|(f, s)| f - s).collect();
    let signal = ema(&line, 9)?;
    let last = *line.last()?;
    Some((last, signal, last - signal))
}

/// Bollinger bands over `period` with `k` standard deviations: (lower,
/// middle, upper).
pub fn bollinger(closes: &[f64], period: usize, k: f64) -> Option<(f64, f64, f64)> {
    if period == 0 || closes.len() < period {
        return None;
    }
    let window = &closes[closes.len() - period..];
    let mean = window.iter().sum::<f64>() / period as f64;
    let var = window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / period as f64;
    let sd = var.sqrt();
    Some((mean - k * sd, mean, mean + k * sd))
}

/// Average directional index (Wilder) over `period`, 0–100: trend
/// strength whatever its direction.
pub fn adx(highs: &[f64], lows: &[f64], closes: &[f64], period: usize) -> Option<f64> {
    let n = closes.len();
    if period == 0 || n != highs.len() || n != lows.len() || n < 2 * period + 1 {
        return None;
    }
    let (mut tr, mut plus, mut minus) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..n {
        let up = highs[i] - highs[i - 1];
        let down = lows[i - 1] - lows[i];
        plus.push(if up > down && up > 0.0 { up } else { 0.0 });
        minus.push(if down > up && down > 0.0 { down } else { 0.0 });
        tr.push(
            (highs[i] - lows[i])
                .max((highs[i] - closes[i - 1]).abs())
                .max((lows[i] - closes[i - 1]).abs()),
        );
    }
    let smooth = |xs: &[f64]| -> Vec<f64> {
        let mut out = vec![xs[..period].iter().sum::<f64>()];
        for x in &xs[period..] {
            let last = out[out.len() - 1];
            out.push(last - last / period as f64 + x);
        }
        out
    };
    let (tr, plus, minus) = (smooth(&tr), smooth(&plus), smooth(&minus));
    let dx: Vec<f64> = tr
        .iter()
        .zip(plus.iter().zip(&minus))
        .map(|(t, (p, m))| {
            if *t == 0.0 {
                return 0.0;
            }
            let (pdi, mdi) = (100.0 * p / t, 100.0 * m / t);
            if pdi + mdi == 0.0 {
                0.0
            } else {
                100.0 * (pdi - mdi).abs() / (pdi + mdi)
            }
        })
        .collect();
    let mut value = dx[..period].iter().sum::<f64>() / period as f64;
    for d in &dx[period..] {
        value = (value * (period as f64 - 1.0) + d) / period as f64;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_prices_read_as_strong_and_falling_as_weak() {
        let up: Vec<f64> = (0..40).map(|i| 100.0 + i as f64).collect();
        let down: Vec<f64> = up.iter().rev().copied().collect();
        assert_eq!(rsi(&up, 14), Some(100.0));
        assert!(rsi(&down, 14).unwrap() < 1.0);
        assert!(macd(&up).unwrap().0 > 0.0 && macd(&down).unwrap().0 < 0.0);
        assert!(ema(&up, 10).unwrap() > ema(&up, 30).unwrap());
        let highs: Vec<f64> = up.iter().map(|v| v + 1.0).collect();
        let lows: Vec<f64> = up.iter().map(|v| v - 1.0).collect();
        assert!(
            adx(&highs, &lows, &up, 14).unwrap() > 50.0,
            "a straight line trends"
        );
    }

    #[test]
    fn bollinger_bands_widen_with_volatility_and_too_few_points_is_none() {
        let calm = vec![100.0; 20];
        let wild: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 90.0 } else { 110.0 })
            .collect();
        let (lo, mid, hi) = bollinger(&calm, 20, 2.0).unwrap();
        assert_eq!((lo, mid, hi), (100.0, 100.0, 100.0));
        let (lo, _, hi) = bollinger(&wild, 20, 2.0).unwrap();
        assert!((hi - lo - 40.0).abs() < 1e-9, "{lo} {hi}");
        assert_eq!(rsi(&[1.0, 2.0], 14), None);
        assert_eq!(macd(&[1.0; 10]), None);
        assert_eq!(bollinger(&[1.0], 20, 2.0), None);
    }
}
