//! Durations and sizes as people write them on a command line or in a
//! tenants file: `10ms`, `2s`, `64MiB`, and thread counts.

use std::time::Duration;

/// Parses `10ms`, `500us`, `2s`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a time like 10ms, 500us or 2s");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = text[..split].parse().map_err(|_| bad())?;
    let d = match &text[split..] {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(d)
}

/// Parses `123`, `64KiB`, `64MiB`, `1GiB` (also `K`, `M`, `G`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 64MiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => return Err(format!("unknown size unit `{other}` (use KiB, MiB or GiB)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A thread count between 1 and `engine::MAX_THREADS`.
pub(crate) fn parse_threads(text: &str) -> Result<usize, String> {
    let max = crate::engine::MAX_THREADS;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of threads between 1 and {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_or_say_why_not() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(
            parse_size("99999999999999G"),
            Err("`99999999999999G` is too large".into())
        );
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("1TB").unwrap_err().contains("unknown size unit"));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(
            parse_duration("0ms")
                .unwrap_err()
                .contains("more than zero")
        );
    }
}
