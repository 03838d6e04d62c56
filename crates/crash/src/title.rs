//! Title clean-up, following syzkaller's `dynamicTitleReplacement` and `sanitizeTitle`:
//! free text taken from the log (a panic message) loses what changes from run to run
//! (addresses become `ADDR`, numbers `NUM`, line numbers `LINE`), and every title is printable
//! ASCII on one line with single spaces.

/// Replaces run-dependent parts of free text (a panic message) the way syzkaller does.
pub(crate) fn replace_dynamic(text: &str) -> String {
    let mut s = text.as_bytes().to_vec();
    for rule in RULES {
        // Each rule runs until nothing changes, as in syzkaller; a few rounds always suffice.
        for _ in 0..8 {
            let next = rule(&s);
            if next == s {
                break;
            }
            s = next;
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Printable ASCII only, tabs as spaces, no runs of spaces, at most the first 120 characters.
pub(crate) fn sanitize(title: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::with_capacity(title.len().min(MAX));
    let mut prev = b' ';
    for &b in title.as_bytes().iter().take(MAX) {
        let b = if b == b'\t' { b' ' } else { b };
        if !(0x20..0x7f).contains(&b) || (b == b' ' && prev == b' ') {
            continue;
        }
        out.push(char::from(b));
        prev = b;
    }
    out.trim().to_owned()
}

type Rule = fn(&[u8]) -> Vec<u8>;

const RULES: &[Rule] = &[
    executor,
    syzkaller,
    address,
    ip_address,
    file_line,
    function_offset,
    cpu_number,
    standalone_number,
    long_number,
];

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn digits_at(s: &[u8], i: usize) -> usize {
    s.get(i..)
        .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// Rewrites `s` left to right: at each position `matcher` may return the end of a match and
/// its replacement; unmatched bytes are copied.
fn rewrite(s: &[u8], matcher: impl Fn(&[u8], usize) -> Option<(usize, Vec<u8>)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match matcher(s, i) {
            Some((end, repl)) if end > i => {
                out.extend_from_slice(&repl);
                i = end;
            }
            _ => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// `NAME\.?[0-9]+((/|:)[0-9]+)?` becomes `NAME`.
fn numbered_name(s: &[u8], i: usize, name: &[u8], dot: bool) -> Option<(usize, Vec<u8>)> {
    let rest = s.get(i..)?;
    if !rest.starts_with(name) {
        return None;
    }
    let mut j = i + name.len();
    if dot && s.get(j) == Some(&b'.') && digits_at(s, j + 1) > 0 {
        j += 1;
    }
    let n = digits_at(s, j);
    if n == 0 {
        return None;
    }
    j += n;
    if matches!(s.get(j), Some(b'/' | b':')) && digits_at(s, j + 1) > 0 {
        j += 1 + digits_at(s, j + 1);
    }
    Some((j, name.to_vec()))
}

fn executor(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| numbered_name(s, i, b"syz-executor", true))
}

fn syzkaller(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| numbered_name(s, i, b"syzkaller", false))
}

/// `([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}` becomes `${1}ADDR`.
fn address(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        let c = *s.get(i)?;
        if c.is_ascii_alphanumeric() {
            return None;
        }
        let hex = |from: usize| {
            s.get(from..).map_or(0, |r| {
                r.iter()
                    .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                    .count()
            })
        };
        let mut start = i + 1;
        if s.get(start..).is_some_and(|r| r.starts_with(b"0x")) && hex(start + 2) >= 6 {
            start += 2;
        }
        let n = hex(start);
        (n >= 6).then(|| {
            let mut repl = vec![c];
            repl.extend_from_slice(b"ADDR");
            (start + n, repl)
        })
    })
}

/// Four dot-separated groups of one to three digits become `IP`.
fn ip_address(s: &[u8]) -> Vec<u8> {
    fn group(s: &[u8], i: usize, left: usize) -> Option<usize> {
        let n = digits_at(s, i).min(3);
        // Prefer the longest group that lets the rest match, as a backtracking regex would.
        (1..=n).rev().find_map(|len| {
            let end = i + len;
            if left == 0 {
                Some(end)
            } else if s.get(end) == Some(&b'.') {
                group(s, end + 1, left - 1)
            } else {
                None
            }
        })
    }
    rewrite(s, |s, i| group(s, i, 3).map(|end| (end, b"IP".to_vec())))
}

/// `(\.\w+)(:[0-9]+)+` becomes `${1}:LINE`.
fn file_line(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        if s.get(i) != Some(&b'.') {
            return None;
        }
        let word = s.get(i + 1..)?.iter().take_while(|b| is_word(**b)).count();
        if word == 0 {
            return None;
        }
        let mut j = i + 1 + word;
        let mut groups = 0;
        while s.get(j) == Some(&b':') && digits_at(s, j + 1) > 0 {
            j += 1 + digits_at(s, j + 1);
            groups += 1;
        }
        (groups > 0).then(|| {
            let mut repl = s[i..i + 1 + word].to_vec();
            repl.extend_from_slice(b":LINE");
            (j, repl)
        })
    })
}

/// `name+0x15/0x30` becomes `name`.
fn function_offset(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        let rest = s.get(i..)?;
        if !rest.starts_with(b"+0x") || i < 2 {
            return None;
        }
        let run = s[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
            .count();
        let name = &s[i - run..i];
        if run < 2 || !name[..run - 1].iter().any(u8::is_ascii_alphabetic) {
            return None;
        }
        let alnum = |from: usize| {
            s.get(from..).map_or(0, |r| {
                r.iter()
                    .take_while(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
                    .count()
            })
        };
        let off = alnum(i + 3);
        let slash = i + 3 + off;
        if off == 0 || !s.get(slash..).is_some_and(|r| r.starts_with(b"/0x")) {
            return None;
        }
        let size = alnum(slash + 3);
        (size > 0).then(|| (slash + 3 + size, Vec::new()))
    })
}

/// `CPU#3` becomes `CPU`.
fn cpu_number(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        let rest = s.get(i..)?;
        let n = digits_at(s, i + 4);
        (rest.starts_with(b"CPU#") && n > 0).then(|| (i + 4 + n, b"CPU".to_vec()))
    })
}

/// `(\W)(\d+)(\W|$)` becomes `${1}NUM${3}`.
fn standalone_number(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        let c = *s.get(i)?;
        if is_word(c) {
            return None;
        }
        let n = digits_at(s, i + 1);
        let end = i + 1 + n;
        if n == 0 || s.get(end).is_some_and(|b| is_word(*b)) {
            return None;
        }
        let mut repl = vec![c];
        repl.extend_from_slice(b"NUM");
        Some((end, repl))
    })
}

/// Seven or more digits in a row become `NUM`.
fn long_number(s: &[u8]) -> Vec<u8> {
    rewrite(s, |s, i| {
        let n = digits_at(s, i);
        (n >= 7).then(|| (i + n, b"NUM".to_vec()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_parts() {
        assert_eq!(
            replace_dynamic("VFS: Unable to mount root fs on unknown-block(0,0)"),
            "VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(
            replace_dynamic("bad at 0xffff888012345678!"),
            "bad at ADDR!"
        );
        assert_eq!(replace_dynamic("x in foo+0x12/0x30 y"), "x in foo y");
        assert_eq!(replace_dynamic("CPU#3 on 10.0.0.1"), "CPU on IP");
        assert_eq!(
            replace_dynamic("at mm/slub.c:123:4 now"),
            "at mm/slub.c:LINE now"
        );
        assert_eq!(replace_dynamic("cfg80211 x1234567"), "cfg80211 xNUM");
        assert_eq!(replace_dynamic("at 1234567x"), "at ADDRx");
        assert_eq!(replace_dynamic("boom"), "boom");
        assert_eq!(replace_dynamic("syz-executor.3:123 ok"), "syz-executor ok");
        assert_eq!(replace_dynamic("é 12 ü"), "é NUM ü");
    }

    #[test]
    fn sanitized() {
        assert_eq!(sanitize(" a\t\tb\u{1}  c "), "a b c");
        assert_eq!(sanitize(&"x".repeat(300)).len(), 120);
        assert_eq!(sanitize("caf\u{e9}"), "caf");
    }
}
