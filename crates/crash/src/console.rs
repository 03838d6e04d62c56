//! One console line: the printk prefix (`<N>`, `[    1.234567]`, `[  T123]`) and the message.

/// A console line split into what the kernel printed and what it was prefixed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConsoleLine<'a> {
    /// The line as found, without trailing `\r` or `\n`.
    pub raw: &'a str,
    /// The kernel message, after any syslog level, timestamp and caller id.
    pub msg: &'a str,
    /// The caller id (`T123` for a task, `C0` for a CPU) when `CONFIG_PRINTK_CALLER` printed one.
    pub caller: Option<&'a str>,
    /// Whether the line had a printk timestamp.
    pub stamped: bool,
}

/// Splits one console line. Never fails: a line without a prefix is all message.
pub(crate) fn split(line: &str) -> ConsoleLine<'_> {
    let raw = line.trim_end_matches(['\r', '\n']);
    // A carriage return inside a line means the terminal went back to column 0: what follows
    // the last one is what was printed last (typically a kernel line after a prompt).
    let mut rest = match raw.rfind('\r') {
        Some(pos) => &raw[pos + 1..],
        None => raw,
    };
    if let Some(after) = strip_dropped_notice(rest) {
        rest = after;
    }
    if let Some(after) = strip_level(rest) {
        rest = after;
    }
    let mut caller = None;
    let mut stamped = false;
    if let Some(after) = strip_bracketed(rest, is_timestamp) {
        stamped = true;
        rest = after;
        if let Some((id, after)) = strip_caller(rest) {
            caller = Some(id);
            rest = after;
        }
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    ConsoleLine {
        raw,
        msg: rest,
        caller,
        stamped,
    }
}

/// `** 5 printk messages dropped ** `
fn strip_dropped_notice(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("** ")?;
    let end = rest.find(" printk messages dropped ** ")?;
    if end == 0 || !rest[..end].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(&rest[end + " printk messages dropped ** ".len()..])
}

/// `<6>`
fn strip_level(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 4 || !rest[..end].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(&rest[end + 1..])
}

/// `[ ... ]` whose inside satisfies `ok`; returns what follows.
fn strip_bracketed(s: &str, ok: fn(&str) -> bool) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(']')?;
    ok(&rest[..end]).then(|| &rest[end + 1..])
}

/// `    1.234567`
fn is_timestamp(inside: &str) -> bool {
    let t = inside.trim_start_matches(' ');
    match t.split_once('.') {
        Some((secs, frac)) => {
            !secs.is_empty()
                && !frac.is_empty()
                && secs.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `[  T123]` or `[ C0]` right after the timestamp.
fn strip_caller(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(']')?;
    let id = rest[..end].trim_start_matches(' ');
    let digits = id.strip_prefix('T').or_else(|| id.strip_prefix('C'))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id, &rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message() {
        let l = split("BUG: kernel NULL pointer dereference, address: 0000000000000000");
        assert_eq!(l.msg, l.raw);
        assert_eq!(l.caller, None);
    }

    #[test]
    fn timestamp_level_and_caller() {
        let l = split("<1>[   12.345678][  T123] BUG: x\r");
        assert_eq!(l.raw, "<1>[   12.345678][  T123] BUG: x");
        assert_eq!(l.msg, "BUG: x");
        assert_eq!(l.caller, Some("T123"));
        let l = split("[    1.000000][    C0]  foo+0x1/0x2");
        assert_eq!(l.msg, " foo+0x1/0x2");
        assert_eq!(l.caller, Some("C0"));
        let l = split("[    1.000000]  <TASK>");
        assert_eq!(l.msg, " <TASK>");
        assert_eq!(l.caller, None);
    }

    #[test]
    fn carriage_return_inside() {
        let l = split("login: \r[    2.5] Kernel panic - not syncing: boom\r\r");
        assert_eq!(l.msg, "Kernel panic - not syncing: boom");
    }

    #[test]
    fn not_a_timestamp() {
        let l = split("[<ffffffff81234567>] foo+0x1/0x2");
        assert_eq!(l.msg, "[<ffffffff81234567>] foo+0x1/0x2");
        let l = split("[ 1.] x");
        assert_eq!(l.msg, "[ 1.] x");
        let l = split("<");
        assert_eq!(l.msg, "<");
        let l = split("** 3 printk messages dropped ** [    1.5] hi");
        assert_eq!(l.msg, "hi");
    }
}
