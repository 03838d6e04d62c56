//! Decimal numbers scanned as the C library's `strtol` family scans them: leading white space, an
//! optional sign, digits; where the number ends; overflow reported, not hidden. The tools kmodlab
//! matches byte for byte (kmod, util-linux) read their inputs this way, oddities included.
#![deny(missing_docs)]

/// `isspace` in the C locale.
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A decimal number found at some index of a byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    /// A `-` came before the digits.
    pub negative: bool,
    /// The digits' value, `None` when it does not fit in 64 bits.
    pub magnitude: Option<u64>,
    /// Where the number ends; the starting index when there are no digits (as C's `endptr`).
    pub end: usize,
}

/// Scans `b[at..]`: white space, a sign, then decimal digits.
pub fn scan(b: &[u8], at: usize) -> Decimal {
    let mut i = at;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = i;
    let mut magnitude = Some(0u64);
    while i < b.len() && b[i].is_ascii_digit() {
        magnitude = magnitude
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(u64::from(b[i] - b'0')));
        i += 1;
    }
    if i == digits {
        return Decimal {
            negative: false,
            magnitude: Some(0),
            end: at,
        };
    }
    Decimal {
        negative,
        magnitude,
        end: i,
    }
}

/// `strtol` for a 64-bit `long`: the value (`None` on overflow, C's `ERANGE`) and where it ends.
pub fn strtol(b: &[u8], at: usize) -> (Option<i64>, usize) {
    let d = scan(b, at);
    let value = d.magnitude.and_then(|m| {
        if d.negative {
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(m).ok()
        }
    });
    (value, d.end)
}

/// `strtoumax`/`strtoul`: a negative number wraps around as in C; `None` on overflow.
pub fn strtoumax(b: &[u8], at: usize) -> (Option<u64>, usize) {
    let d = scan(b, at);
    let value = d
        .magnitude
        .map(|m| if d.negative { m.wrapping_neg() } else { m });
    (value, d.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_the_c_library() {
        assert_eq!(strtol(b"  42,", 0), (Some(42), 4));
        assert_eq!(strtol(b"-7>", 0), (Some(-7), 2));
        assert_eq!(strtol(b"x", 0), (Some(0), 0));
        assert_eq!(strtol(b" +", 0), (Some(0), 0));
        assert_eq!(strtol(b"-9223372036854775808", 0).0, Some(i64::MIN));
        assert_eq!(strtol(b"9223372036854775808", 0).0, None);
        assert_eq!(strtol(b"99999999999999999999]", 0), (None, 20));
        assert_eq!(strtoumax(b"-1;", 0), (Some(u64::MAX), 2));
        assert_eq!(strtoumax(b"18446744073709551616", 0).0, None);
        assert_eq!(strtoumax(b"ab 12", 2), (Some(12), 5));
    }
}
