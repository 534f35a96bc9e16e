//! Human durations for validity and renewal periods: `42d`, `6w`, `1y`, `12h`.

use crate::FieldError;

/// Parses `N` followed by a unit (`s`, `m`, `h`, `d`, `w`, `y` = 365 days) into seconds.
pub fn parse_duration(field: &str, text: &str) -> Result<i64, FieldError> {
    let text = text.trim();
    let rule = || {
        FieldError::new(
            field,
            format!(
                "`{text}` is not a duration: expected a whole number and a unit, e.g. 42d, 6w, 1y, 12h"
            ),
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(rule)?;
    let (num, unit) = text.split_at(split);
    let n: i64 = num.parse().map_err(|_| rule())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(rule()),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(|| {
        FieldError::new(
            field,
            format!("`{text}` must be greater than zero and below 10,000 years"),
        )
    })
}

/// Formats seconds back in the largest exact unit, the inverse of [`parse_duration`].
pub fn format_duration(secs: i64) -> String {
    for (unit, mult) in [
        ("y", 365 * 86_400),
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
    ] {
        if secs != 0 && secs % mult == 0 {
            return format!("{}{unit}", secs / mult);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("f", "42d").unwrap(), 42 * 86_400);
        assert_eq!(parse_duration("f", "6w").unwrap(), 42 * 86_400);
        assert_eq!(parse_duration("f", "1y").unwrap(), 365 * 86_400);
        assert_eq!(format_duration(42 * 86_400), "6w");
        assert_eq!(format_duration(90), "90s");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "d", "12", "1x", "-1d", "0d", "99999999999999y"] {
            let e = parse_duration("validity", bad).unwrap_err();
            assert_eq!(e.field, "validity", "{bad}");
        }
    }
}
