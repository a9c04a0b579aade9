//! How figures read as text in every report (console, `compare`, `comparison.md`, charts):
//! bytes, bit/s, durations in µs and plain numbers. One place, so the outputs cannot drift
//! apart, and a figure that was not measured (NaN or `None`) reads [`NOT_MEASURED`]
//! everywhere instead of "NaN" or 0.

/// What a figure that was not measured reads as: a run that delivered nothing has no latency,
/// not a latency of 0 µs.
pub const NOT_MEASURED: &str = "-";

/// How many digits a figure keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digits {
    /// This many decimals, so the figures of a table column line up.
    Fixed(usize),
    /// About three significant digits, none after the point of a whole number: axis ticks and
    /// notes stay short.
    Three,
    /// Whole numbers whole, four decimals below 10 (ratios), two otherwise: one column that
    /// mixes counts, ratios and bytes.
    Mixed,
}

/// A plain figure.
pub fn figure(value: f64, digits: Digits) -> String {
    if !value.is_finite() {
        return NOT_MEASURED.to_string();
    }
    let decimals = match digits {
        Digits::Fixed(decimals) => decimals,
        Digits::Three | Digits::Mixed if value.fract() == 0.0 => 0,
        Digits::Three if value.abs() >= 100.0 => 0,
        Digits::Three if value.abs() >= 10.0 => 1,
        Digits::Three => 2,
        Digits::Mixed if value.abs() < 10.0 => 4,
        Digits::Mixed => 2,
    };
    format!("{value:.decimals$}")
}

/// A figure that may be missing, shown by `show` when it is not.
pub fn optional(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| NOT_MEASURED.to_string(), show)
}

/// A figure with SI prefixes (steps of 10^3, not 2^10) before `unit`: `6.97 Mbit/s`.
pub fn si(value: f64, unit: &str, digits: Digits) -> String {
    if !value.is_finite() {
        return NOT_MEASURED.to_string();
    }
    let (scaled, prefix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    format!("{} {prefix}{unit}", figure(scaled, digits))
}

/// Bandwidth, with SI prefixes.
pub fn bits_per_second(bps: f64, digits: Digits) -> String {
    si(bps, "bit/s", digits)
}

/// Bytes without a prefix: per-message counts are read to the byte.
pub fn bytes(value: f64, digits: Digits) -> String {
    if value.is_finite() {
        format!("{} B", figure(value, digits))
    } else {
        NOT_MEASURED.to_string()
    }
}

/// A duration in µs, in the unit that keeps it readable; whole µs below a millisecond, where
/// the histograms' resolution ends.
pub fn duration_us(us: f64, digits: Digits) -> String {
    match us {
        u if !u.is_finite() => NOT_MEASURED.to_string(),
        u if u >= 1e6 => format!("{} s", figure(u / 1e6, digits)),
        u if u >= 1e3 => format!("{} ms", figure(u / 1e3, digits)),
        u => format!("{:.0} µs", u.round()),
    }
}

/// A duration in ms (the link's and the faults' unit), as `duration_us` writes it.
pub fn duration_ms(ms: f64) -> String {
    duration_us(ms * 1e3, Digits::Three)
}

/// A latency figure of a run; `None` when it delivered nothing.
pub fn latency(us: Option<u64>, digits: Digits) -> String {
    optional(us.map(|us| us as f64), |us| duration_us(us, digits))
}

/// A whole number with thousands separators before `unit`, as the article prints bit/s:
/// "6,968,000 bit/s".
pub fn grouped(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return NOT_MEASURED.to_string();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if value < 0.0 { "-" } else { "" };
    format!("{sign}{out} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes_are_powers_of_ten() {
        assert_eq!(
            bits_per_second(6_968_000.0, Digits::Fixed(2)),
            "6.97 Mbit/s"
        );
        assert_eq!(bits_per_second(16_000.0, Digits::Fixed(2)), "16.00 kbit/s");
        assert_eq!(bits_per_second(6_968_000.0, Digits::Three), "6.97 Mbit/s");
        assert_eq!(bits_per_second(16_000.0, Digits::Three), "16 kbit/s");
        assert_eq!(bits_per_second(696_800_000.0, Digits::Three), "697 Mbit/s");
        assert_eq!(si(2.5, "B", Digits::Three), "2.50 B");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_us(1_500.0, Digits::Fixed(2)), "1.50 ms");
        assert_eq!(duration_us(999.0, Digits::Fixed(2)), "999 µs");
        assert_eq!(duration_us(508_160.0, Digits::Three), "508 ms");
        assert_eq!(duration_us(9_310.0, Digits::Three), "9.31 ms");
        assert_eq!(duration_us(10_000_000.0, Digits::Three), "10 s");
    }

    #[test]
    fn mixed_digits_keep_counts_whole_and_ratios_fine() {
        assert_eq!(figure(30_000.0, Digits::Mixed), "30000");
        assert_eq!(figure(0.99, Digits::Mixed), "0.9900");
        assert_eq!(figure(929.031, Digits::Mixed), "929.03");
    }

    #[test]
    fn numbers_read_as_in_the_article() {
        assert_eq!(grouped(6_968_000.0, "bit/s"), "6,968,000 bit/s");
        assert_eq!(grouped(160.0, "bit/s"), "160 bit/s");
    }

    #[test]
    fn what_was_not_measured_reads_the_same_everywhere() {
        let digits = [Digits::Fixed(2), Digits::Three, Digits::Mixed];
        for d in digits {
            assert_eq!(figure(f64::NAN, d), NOT_MEASURED);
            assert_eq!(bits_per_second(f64::NAN, d), NOT_MEASURED);
            assert_eq!(bytes(f64::NAN, d), NOT_MEASURED);
            assert_eq!(duration_us(f64::NAN, d), NOT_MEASURED);
            assert_eq!(latency(None, d), NOT_MEASURED);
        }
        assert_eq!(grouped(f64::NAN, "bit/s"), NOT_MEASURED);
        assert_eq!(optional(None, |v| v.to_string()), NOT_MEASURED);
    }
}
