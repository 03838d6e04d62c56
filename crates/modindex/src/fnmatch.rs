//! Shell wildcard matching as glibc's `fnmatch(pattern, string, 0)` does it on bytes in the C
//! locale: the matching libkmod applies to alias patterns.
//!
//! `*` matches any run of bytes (slashes and leading dots included: no flags), `?` any one
//! byte, `[...]` a set (`!` or `^` negates it, `]` first is literal, `a-z` ranges, `[:alpha:]`
//! classes, `\` quotes); a `[` without its `]` is an ordinary byte, and `\` quotes the next
//! byte anywhere.

/// Does `string` match the wildcard `pattern`?
///
/// ```
/// use kmodlab_modindex::fnmatch::fnmatch;
/// assert!(fnmatch(b"pci:v00008086d*sv*", b"pci:v00008086d000010D3sv00001028"));
/// assert!(fnmatch(b"usb:v*p[0-9]*", b"usb:v1234p7abc"));
/// assert!(!fnmatch(b"usb:v*p[!0-9]*", b"usb:v1234p7abc"));
/// ```
pub fn fnmatch(pattern: &[u8], string: &[u8]) -> bool {
    // Greedy matching with one backtrack point: the latest `*` and where its match ends.
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    // Consecutive stars are one.
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    star = Some((p, s));
                    continue;
                }
                _ => {
                    if let Some((len, matched)) = match_one(pattern, p, string.get(s).copied()) {
                        if matched {
                            p += len;
                            s += 1;
                            continue;
                        }
                    }
                }
            }
        } else if s == string.len() {
            return true;
        }
        // Mismatch: let the last star eat one more byte, or fail.
        match star {
            Some((sp, ss)) if ss < string.len() => {
                star = Some((sp, ss + 1));
                p = sp;
                s = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single-byte pattern element at `pattern[p]` (not `*`) against `byte`:
/// `Some((length of the element, matched))`, or `None` when there is no byte to match.
fn match_one(pattern: &[u8], p: usize, byte: Option<u8>) -> Option<(usize, bool)> {
    let byte = byte?;
    Some(match pattern[p] {
        b'?' => (1, true),
        b'[' => match bracket(pattern, p + 1, byte) {
            Some((len, matched)) => (len + 1, matched),
            // No closing `]`: the `[` is literal.
            None => (1, byte == b'['),
        },
        b'\\' if p + 1 < pattern.len() => (2, pattern[p + 1] == byte),
        c => (1, c == byte),
    })
}

/// A bracket expression starting after its `[` at `pattern[start]`: `Some((length up to and
/// including the closing ], matched))`, or `None` when it is not closed.
fn bracket(pattern: &[u8], start: usize, byte: u8) -> Option<(usize, bool)> {
    let mut i = start;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        if c == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        // A character class: [:name:].
        if c == b'[' && pattern.get(i + 1) == Some(&b':') {
            if let Some(len) = pattern[i + 2..].windows(2).position(|w| w == b":]") {
                let name = &pattern[i + 2..i + 2 + len];
                matched |= in_class(name, byte);
                i += len + 4;
                continue;
            }
        }
        let (lo, next) = if c == b'\\' {
            (*pattern.get(i + 1)?, i + 2)
        } else {
            (c, i + 1)
        };
        // A range lo-hi (a `-` before the closing `]` is literal).
        if pattern.get(next) == Some(&b'-') && pattern.get(next + 1).is_some_and(|&h| h != b']') {
            let (hi, after) = if pattern[next + 1] == b'\\' {
                (*pattern.get(next + 2)?, next + 3)
            } else {
                (pattern[next + 1], next + 2)
            };
            matched |= lo <= byte && byte <= hi;
            i = after;
        } else {
            matched |= lo == byte;
            i = next;
        }
    }
    Some((i - start, matched != negate))
}

fn in_class(name: &[u8], b: u8) -> bool {
    match name {
        b"alnum" => b.is_ascii_alphanumeric(),
        b"alpha" => b.is_ascii_alphabetic(),
        b"blank" => b == b' ' || b == b'\t',
        b"cntrl" => b.is_ascii_control(),
        b"digit" => b.is_ascii_digit(),
        b"graph" => b.is_ascii_graphic(),
        b"lower" => b.is_ascii_lowercase(),
        b"print" => b.is_ascii_graphic() || b == b' ',
        b"punct" => b.is_ascii_punctuation(),
        b"space" => matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b"upper" => b.is_ascii_uppercase(),
        b"xdigit" => b.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn like_glibc() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "/a/.b", true),
            ("a*", "a", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("a*b*c", "abbbc", true),
            ("*ab", "aab", true),
            ("?", "", false),
            ("?", "x", true),
            ("a?c", "abc", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[!abc]", "d", true),
            ("[^abc]", "a", false),
            ("[]]", "]", true),
            ("[]a]", "a", true),
            ("[!]]", "]", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[a-]", "-", true),
            ("[[:digit:]]*", "7abc", true),
            ("[[:upper:][:digit:]]", "Q", true),
            ("[[:upper:]]", "q", false),
            ("[", "[", true),
            ("[ab", "[ab", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("[\\]]", "]", true),
            (
                "pci:v*d*sv*sd*bc02sc00i*",
                "pci:v00008086d000010D3sv00001028sd00000000bc02sc00i00",
                true,
            ),
            ("dmi*:svnLENOVO:*", "dmi:bvnX:svnLENOVO:pn20", true),
        ];
        for &(pattern, string, expected) in cases {
            assert_eq!(
                fnmatch(pattern.as_bytes(), string.as_bytes()),
                expected,
                "fnmatch({pattern:?}, {string:?})"
            );
        }
    }

    fn text_fnmatch(pattern: &str, string: &str) -> bool {
        fnmatch(pattern.as_bytes(), string.as_bytes())
    }

    #[test]
    fn kmod_cases_stars_and_questions() {
        assert!(text_fnmatch(
            "pci:v00008086d*sv*",
            "pci:v00008086d0000100Esv00001234"
        ));
        assert!(text_fnmatch("*", ""));
        assert!(text_fnmatch("a*b*c", "aXXbYYc"));
        assert!(!text_fnmatch("a*b*c", "aXXbYY"));
        assert!(text_fnmatch("snd_?ci", "snd_pci"));
        assert!(!text_fnmatch("snd_?ci", "snd_ci"));
        assert!(text_fnmatch("*/x", "a/b/x"));
        assert!(text_fnmatch(".*", ".hidden"));
        assert!(text_fnmatch("exact", "exact"));
        assert!(!text_fnmatch("exact", "exactly"));
    }

    #[test]
    fn kmod_cases_brackets() {
        assert!(text_fnmatch("usb:v[0-9]*", "usb:v1"));
        assert!(!text_fnmatch("usb:v[!0-9]*", "usb:v1"));
        assert!(text_fnmatch("usb:v[^0-9]*", "usb:vA"));
        assert!(text_fnmatch("[]]", "]"));
        assert!(text_fnmatch("[a-]", "-"));
        assert!(text_fnmatch("[[:digit:]]x", "7x"));
        assert!(!text_fnmatch("[[:digit:]]x", "ax"));
        assert!(text_fnmatch("a[b", "a[b"));
        assert!(text_fnmatch("dmi*:pn[Vv]iewpad*", "dmi:bvnX:pnViewpad10"));
    }

    #[test]
    fn kmod_cases_backslash_quotes() {
        assert!(text_fnmatch("a\\*", "a*"));
        assert!(!text_fnmatch("a\\*", "ab"));
        assert!(text_fnmatch("a\\", "a\\"));
    }
}
