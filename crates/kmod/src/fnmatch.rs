//! Shell wildcard matching with the semantics of glibc's `fnmatch(pattern, string, 0)`, which
//! kmod uses for modprobe.d aliases, softdeps, install/remove commands and module aliases:
//! `*` matches any run of bytes (slashes and leading dots included), `?` any one byte, `[...]`
//! a set (`!` or `^` negates, `a-z` ranges, `[:class:]` classes, `]` first is literal), and a
//! backslash quotes the next byte. An unterminated `[` matches itself.

/// Whether `string` matches the shell wildcard `pattern`.
pub fn fnmatch(pattern: &str, string: &str) -> bool {
    matches(pattern.as_bytes(), string.as_bytes())
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // Where to resume after the last `*`: pattern position after it, and string position.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi == p.len() && si == s.len() {
            return true;
        }
        if pi < p.len() && p[pi] == b'*' {
            while pi < p.len() && p[pi] == b'*' {
                pi += 1;
            }
            if pi == p.len() {
                return true;
            }
            star = Some((pi, si));
            continue;
        }
        // How far the pattern advances when it matches one byte of the string here.
        let step = match (p.get(pi), s.get(si)) {
            (Some(b'?'), Some(_)) => Some(1),
            (Some(b'['), Some(&c)) => match bracket(p, pi, c) {
                Some((true, next)) => Some(next - pi),
                Some((false, _)) => None,
                // Not a valid bracket expression: a literal `[`.
                None => (c == b'[').then_some(1),
            },
            (Some(b'\\'), Some(&c)) if pi + 1 < p.len() => (c == p[pi + 1]).then_some(2),
            (Some(&pc), Some(&c)) => (pc == c).then_some(1),
            _ => None,
        };
        if let Some(n) = step {
            pi += n;
            si += 1;
            continue;
        }
        // Mismatch: let the last `*` swallow one more byte.
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Matches byte `c` against the bracket expression starting at `p[start] == '['`. Returns
/// whether it matched and the pattern position after the closing `]`, or `None` when the
/// expression is not terminated.
fn bracket(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'[' && p.get(i + 1) == Some(&b':') {
            if let Some(end) = find_class_end(p, i + 2) {
                let name = &p[i + 2..end];
                if class_matches(name, c) {
                    matched = true;
                }
                i = end + 2;
                continue;
            }
        }
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        // A range, unless the `-` is the last thing before `]`.
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
            let mut hi = p[i + 1];
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
    }
}

fn find_class_end(p: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j + 1 < p.len() {
        if p[j] == b':' && p[j + 1] == b']' {
            return Some(j);
        }
        if !p[j].is_ascii_alphabetic() {
            return None;
        }
        j += 1;
    }
    None
}

fn class_matches(name: &[u8], c: u8) -> bool {
    match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn stars_and_questions() {
        assert!(fnmatch(
            "pci:v00008086d*sv*",
            "pci:v00008086d0000100Esv00001234"
        ));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXXbYYc"));
        assert!(!fnmatch("a*b*c", "aXXbYY"));
        assert!(fnmatch("snd_?ci", "snd_pci"));
        assert!(!fnmatch("snd_?ci", "snd_ci"));
        assert!(fnmatch("*/x", "a/b/x"));
        assert!(fnmatch(".*", ".hidden"));
        assert!(fnmatch("exact", "exact"));
        assert!(!fnmatch("exact", "exactly"));
    }

    #[test]
    fn brackets() {
        assert!(fnmatch("usb:v[0-9]*", "usb:v1"));
        assert!(!fnmatch("usb:v[!0-9]*", "usb:v1"));
        assert!(fnmatch("usb:v[^0-9]*", "usb:vA"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("[[:digit:]]x", "7x"));
        assert!(!fnmatch("[[:digit:]]x", "ax"));
        assert!(fnmatch("a[b", "a[b"));
        assert!(fnmatch("dmi*:pn[Vv]iewpad*", "dmi:bvnX:pnViewpad10"));
    }

    #[test]
    fn backslash_quotes() {
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("a\\", "a\\"));
    }
}
