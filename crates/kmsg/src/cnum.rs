//! Field scanning as the kernel-log formats are read by the tools that defined them: a field ends
//! at its separator, numbers are read as `strtol` reads them ([`kmodlab_cnum`]).

pub(crate) use kmodlab_cnum::{is_space, strtol, strtoumax};

/// Moves past the next separator in `b[begin..end]` (or a NUL); returns `end` when there is none.
pub(crate) fn skip_item(b: &[u8], mut begin: usize, end: usize, seps: &[u8]) -> usize {
    while begin < end {
        let c = b[begin];
        begin += 1;
        if c == 0 || seps.contains(&c) {
            break;
        }
    }
    begin
}

/// Whether `c` occurs in `b[from..to]`.
pub(crate) fn has(b: &[u8], from: usize, to: usize, c: u8) -> bool {
    from < to && b[from..to.min(b.len())].contains(&c)
}

/// A syslog priority (`<PRI>` or `PRI,`): the number before `sep`, split into facility and
/// level. Both are -1 when out of range (a facility above 24); the index after `sep`. `None`
/// when there is no number ending exactly at `sep` before `end`.
pub(crate) fn faclev(b: &[u8], at: usize, end: usize, sep: u8) -> Option<(i32, i32, usize)> {
    if !has(b, at, end, sep) {
        return None;
    }
    let (num, num_end) = strtol(b, at);
    let num = num?;
    if num_end <= at || b.get(num_end) != Some(&sep) {
        return None;
    }
    // LOG_FAC and LOG_PRI of <syslog.h>.
    let fac = ((num & 0x3f8) >> 3) as i32;
    let lev = (num & 7) as i32;
    let fac = if fac > 24 { -1 } else { fac };
    Some((fac, lev, num_end + 1))
}

/// `\xNN` decoding as util-linux's `unhexmangle_to_buffer` does it: at most `limit - 1` source
/// bytes (`limit` 0 means no limit), an escape only when it fits whole, stopping at a NUL.
pub(crate) fn unhexmangle(s: &[u8], limit: usize) -> Vec<u8> {
    let max = if limit == 0 { usize::MAX } else { limit - 1 };
    let mut out = Vec::with_capacity(s.len().min(max));
    let mut i = 0;
    while i < s.len() && s[i] != 0 && i < max {
        if s[i] == b'\\'
            && i + 3 < max
            && s.get(i + 1) == Some(&b'x')
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            && s.get(i + 3).is_some_and(u8::is_ascii_hexdigit)
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(s[i + 2]) << 4 | hex(s[i + 3]));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhexmangle_limits() {
        assert_eq!(unhexmangle(b"a\\x41b\n", 0), b"aAb\n");
        assert_eq!(unhexmangle(b"a\\x41b\n", 7), b"aAb");
        assert_eq!(unhexmangle(b"a\\x41b\n", 6), b"aA");
        // An escape that does not fit in the limit stays as it is.
        assert_eq!(unhexmangle(b"\\x41", 4), b"\\x4");
        assert_eq!(unhexmangle(b"ab\0cd", 0), b"ab");
    }
}
