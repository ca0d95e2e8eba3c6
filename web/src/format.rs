//! Human-readable numbers for labels, tables and tooltips.

use precopy_core::units::format_bytes;

/// Bytes with a decimal unit, e.g. `2.20 GB`.
pub fn bytes(value: u64) -> String {
    format_bytes(value as f64)
}

/// Seconds with one decimal below 1000 s, whole seconds above.
pub fn seconds(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0} s")
    } else {
        format!("{value:.1} s")
    }
}

/// A whole number with thin-space thousands separators, e.g. `11 000`.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A link rate in Mbps without trailing zeros, e.g. `20`, `2.5`.
pub fn mbps(bits_per_second: f64) -> String {
    trim_number(bits_per_second / 1e6)
}

/// A number with at most 4 significant decimals and no trailing zeros.
pub fn trim_number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// A unit for an axis whose largest value is `max` bytes: (divisor, label).
pub fn byte_unit(max: f64) -> (f64, &'static str) {
    if max >= 1e9 {
        (1e9, "GB")
    } else if max >= 1e6 {
        (1e6, "MB")
    } else if max >= 1e3 {
        (1e3, "KB")
    } else {
        (1.0, "B")
    }
}

/// Tick values for an axis from 0 to about `max`: 1-2-5 steps, 3 to 6 ticks.
pub fn ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| max / s <= 5.0)
        .unwrap_or(10.0 * magnitude);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn formats() {
        assert_eq!(count(11000), "11\u{2009}000");
        assert_eq!(count(999), "999");
        assert_eq!(mbps(20e6), "20");
        assert_eq!(mbps(2.5e6), "2.5");
        assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(byte_unit(2.2e9), (1e9, "GB"));
    }
}
