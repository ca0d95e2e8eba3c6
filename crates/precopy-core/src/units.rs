//! Parsing of the human units the drivers accept: bandwidth, durations and sizes.
//!
//! Sizes are decimal (1 KB = 1000 bytes), like link rates (1 Mbps = 10⁶ bit/s).

use core::fmt;

use crate::workload::WriteBytes;

/// A quantity that could not be parsed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnitError {
    /// The text holds no number, or a malformed one.
    NotANumber,
    /// The unit suffix is not one this quantity accepts.
    UnknownUnit,
    /// The value is zero, negative or not finite where a positive one is needed.
    NotPositive,
    /// A size that rounds to no bytes, or to more than 2⁶⁴ − 1.
    OutOfRange,
    /// A range whose minimum is above its maximum.
    EmptyRange,
    /// A ratio below 1, or not finite.
    BelowOne,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitError::NotANumber => "not a number",
            UnitError::UnknownUnit => "unknown unit",
            UnitError::NotPositive => "must be a positive, finite value",
            UnitError::OutOfRange => "must be from 1 byte to 2^64 - 1 bytes",
            UnitError::EmptyRange => "the range's minimum is above its maximum",
            UnitError::BelowOne => "must be a finite number of at least 1",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnitError {}

fn split_number(text: &str) -> Result<(f64, &str), UnitError> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(text.len());
    // "1e" followed by a unit letter is not an exponent; back off to the digits.
    let (mut number, mut unit) = text.split_at(end);
    if number.ends_with('e') {
        number = &number[..number.len() - 1];
        unit = &text[number.len()..];
    }
    let value: f64 = number.parse().map_err(|_| UnitError::NotANumber)?;
    Ok((value, unit.trim()))
}

fn positive(value: f64) -> Result<f64, UnitError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(UnitError::NotPositive)
    }
}

/// Parses a link rate into bits per second. A bare number means Mbps.
///
/// ```
/// # use precopy_core::units::parse_bandwidth;
/// assert_eq!(parse_bandwidth("10Mbps"), Ok(10e6));
/// assert_eq!(parse_bandwidth("1.5 Gbit/s"), Ok(1.5e9));
/// assert!(parse_bandwidth("0").is_err());
/// ```
pub fn parse_bandwidth(text: &str) -> Result<f64, UnitError> {
    let (value, unit) = split_number(text)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "mbps" | "mbit/s" | "mb/s" | "m" => 1e6,
        "bps" | "bit/s" | "b/s" => 1.0,
        "kbps" | "kbit/s" | "kb/s" | "k" => 1e3,
        "gbps" | "gbit/s" | "gb/s" | "g" => 1e9,
        _ => return Err(UnitError::UnknownUnit),
    };
    positive(value * scale)
}

/// Parses a duration into seconds. A bare number means seconds.
///
/// ```
/// # use precopy_core::units::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(0.5));
/// assert_eq!(parse_duration("2"), Ok(2.0));
/// ```
pub fn parse_duration(text: &str) -> Result<f64, UnitError> {
    let (value, unit) = split_number(text)?;
    let scale = match unit {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(UnitError::UnknownUnit),
    };
    positive(value * scale)
}

/// Parses a size into bytes (decimal units). A bare number means bytes.
///
/// ```
/// # use precopy_core::units::parse_size;
/// assert_eq!(parse_size("200KB"), Ok(200_000));
/// assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
/// assert!(parse_size("0.4").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(text)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1_048_576.0,
        "gib" => 1_073_741_824.0,
        _ => return Err(UnitError::UnknownUnit),
    };
    let bytes = libm::round(positive(value * scale)?);
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(UnitError::OutOfRange);
    }
    Ok(bytes as u64)
}

/// Parses how many bytes a write dirties: `whole` (the paper's model), a size (`8KiB`), a
/// uniform range (`1KB..64KB`) or an exponential mean (`exp:16KiB`).
///
/// ```
/// # use precopy_core::units::parse_write_bytes;
/// # use precopy_core::WriteBytes;
/// assert_eq!(parse_write_bytes("8KiB"), Ok(WriteBytes::Constant { bytes: 8192 }));
/// assert_eq!(parse_write_bytes("1KB..2KB"), Ok(WriteBytes::Uniform { min: 1000, max: 2000 }));
/// assert_eq!(parse_write_bytes("exp:4KiB"), Ok(WriteBytes::Exponential { mean: 4096 }));
/// assert!(parse_write_bytes("2KB..1KB").is_err());
/// ```
pub fn parse_write_bytes(text: &str) -> Result<WriteBytes, UnitError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("whole") {
        return Ok(WriteBytes::Whole);
    }
    if let Some(mean) = text.strip_prefix("exp:") {
        return Ok(WriteBytes::Exponential {
            mean: parse_size(mean)?,
        });
    }
    if let Some((min, max)) = text.split_once("..") {
        let (min, max) = (parse_size(min)?, parse_size(max)?);
        if min > max {
            return Err(UnitError::EmptyRange);
        }
        return Ok(WriteBytes::Uniform { min, max });
    }
    Ok(WriteBytes::Constant {
        bytes: parse_size(text)?,
    })
}

/// Parses a compression ratio R ≥ 1 (a transfer of n bytes puts n / R on the wire), as `2.5`
/// or `2.5x`.
///
/// ```
/// # use precopy_core::units::{parse_compress_ratio, UnitError};
/// assert_eq!(parse_compress_ratio("3x"), Ok(3.0));
/// assert_eq!(parse_compress_ratio("1"), Ok(1.0));
/// assert_eq!(parse_compress_ratio("0.5"), Err(UnitError::BelowOne));
/// ```
pub fn parse_compress_ratio(text: &str) -> Result<f64, UnitError> {
    let (value, unit) = split_number(text)?;
    if !matches!(unit, "" | "x" | "X") {
        return Err(UnitError::UnknownUnit);
    }
    // Written so that a NaN fails.
    if value.is_finite() && value >= 1.0 {
        Ok(value)
    } else {
        Err(UnitError::BelowOne)
    }
}

/// Formats a byte count with a decimal unit, e.g. `2.20 GB`.
pub fn format_bytes(bytes: f64) -> alloc::string::String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while libm::fabs(value) >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        alloc::format!("{value:.0} B")
    } else {
        alloc::format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_units() {
        assert_eq!(parse_bandwidth("5"), Ok(5e6));
        assert_eq!(parse_bandwidth("  40 Mbps "), Ok(40e6));
        assert_eq!(parse_bandwidth("800kbps"), Ok(800e3));
        assert_eq!(parse_bandwidth("1e2Mbps"), Ok(100e6));
        assert_eq!(parse_bandwidth("-3Mbps"), Err(UnitError::NotPositive));
        assert_eq!(parse_bandwidth("fast"), Err(UnitError::NotANumber));
        assert_eq!(parse_bandwidth("3 furlongs"), Err(UnitError::UnknownUnit));
        assert_eq!(parse_bandwidth("NaN"), Err(UnitError::NotANumber));
        assert_eq!(parse_bandwidth("inf"), Err(UnitError::NotANumber));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1s"), Ok(1.0));
        assert_eq!(parse_duration("2min"), Ok(120.0));
        assert_eq!(parse_duration("0s"), Err(UnitError::NotPositive));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("0"), Err(UnitError::NotPositive));
        assert_eq!(format_bytes(2.2e9), "2.20 GB");
        assert_eq!(format_bytes(999.0), "999 B");
    }

    #[test]
    fn compress_ratios() {
        assert_eq!(parse_compress_ratio(" 2.5 "), Ok(2.5));
        assert_eq!(parse_compress_ratio("4X"), Ok(4.0));
        assert_eq!(parse_compress_ratio("0"), Err(UnitError::BelowOne));
        assert_eq!(parse_compress_ratio("-2"), Err(UnitError::BelowOne));
        assert_eq!(parse_compress_ratio("1e999"), Err(UnitError::BelowOne));
        assert_eq!(parse_compress_ratio("fast"), Err(UnitError::NotANumber));
        assert_eq!(parse_compress_ratio("2 MB"), Err(UnitError::UnknownUnit));
    }

    #[test]
    fn write_sizes() {
        assert_eq!(parse_write_bytes(" whole "), Ok(WriteBytes::Whole));
        assert_eq!(
            parse_write_bytes("100..100"),
            Ok(WriteBytes::Uniform { min: 100, max: 100 })
        );
        assert_eq!(parse_write_bytes("exp:0"), Err(UnitError::NotPositive));
        assert_eq!(parse_write_bytes("..4KB"), Err(UnitError::NotANumber));
        assert_eq!(parse_write_bytes("4 parsecs"), Err(UnitError::UnknownUnit));
        assert_eq!(parse_write_bytes("2..1"), Err(UnitError::EmptyRange));
        // What it prints, it reads back.
        for w in [
            WriteBytes::Whole,
            WriteBytes::Constant { bytes: 8192 },
            WriteBytes::Uniform { min: 1, max: 9 },
            WriteBytes::Exponential { mean: 300 },
        ] {
            assert_eq!(parse_write_bytes(&alloc::format!("{w}")), Ok(w));
        }
    }
}
