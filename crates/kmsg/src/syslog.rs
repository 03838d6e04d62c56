//! The syslog(2) text buffer and files in its format: records `<PRI>[SEC.USEC] MESSAGE`, an optional
//! caller id `[T123]` after the time, separated by a newline before the next `<`. A message may
//! span lines. Read as util-linux's dmesg reads it, oddities included.

use crate::cnum::{faclev, has, skip_item, strtol};
use crate::Timeval;

/// One record of a syslog-format buffer; the message borrows from the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogRecord<'a> {
    /// Log level 0-7; -1 when there is no `<PRI>` prefix.
    pub level: i32,
    /// Facility 0-24; -1 when there is no prefix or it is out of range.
    pub facility: i32,
    /// Time since boot (zero when there is none).
    pub time: Timeval,
    /// The caller id (`T1`, `C0`) when present.
    pub caller: Option<String>,
    /// The message; its lines are separated by `\n`.
    pub message: &'a [u8],
    /// The byte of the buffer just after the message (0 at the end).
    pub next_byte: u8,
}

/// Iterates over the records of a syslog-format buffer.
pub struct SyslogRecords<'a> {
    buf: &'a [u8],
    next: Option<usize>,
}

/// The records of `buf` (the syslog(2) buffer, or a file saved from it).
pub fn syslog_records(buf: &[u8]) -> SyslogRecords<'_> {
    SyslogRecords {
        buf,
        next: (!buf.is_empty()).then_some(0),
    }
}

impl<'a> Iterator for SyslogRecords<'a> {
    type Item = SyslogRecord<'a>;

    fn next(&mut self) -> Option<SyslogRecord<'a>> {
        let b = self.buf;
        let next = self.next?;
        let size = b.len() - next;
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let mut begin: Option<usize> = None;
        let mut i = 0;
        while i < size {
            let p = next + i;
            let mut end = None;
            if begin.is_none() {
                begin = Some(p);
            }
            if i + 1 == size {
                end = Some(p + 1);
                i += 1;
            } else if b[p] == b'\n' && at(p + 1) == b'<' {
                end = Some(p);
            }
            i += 1;
            if begin.is_some_and(|x| at(x) == 0) {
                begin = None; // NULs at the end of the buffer
            }
            let (Some(mut bg), Some(end)) = (begin, end) else {
                continue;
            };
            if end <= bg {
                continue; // an empty line
            }
            let mut rec = SyslogRecord {
                level: -1,
                facility: -1,
                time: Timeval::default(),
                caller: None,
                message: &[],
                next_byte: 0,
            };
            if b[bg] == b'<' {
                bg = match faclev(b, bg + 1, end, b'>') {
                    Some((fac, lev, after)) => {
                        rec.facility = fac;
                        rec.level = lev;
                        after
                    }
                    None => skip_item(b, bg, end, b">"),
                };
            }
            if at(bg) == b'[' && (at(bg + 1) == b' ' || at(bg + 1).is_ascii_digit()) {
                bg = timestamp(b, bg + 1, end, &mut rec.time);
                if bg < end && b[bg] == b' ' {
                    bg += 1;
                }
            }
            let (msg_start, mut msg_len);
            if bg < end && b[bg] == b'[' && matches!(at(bg + 1), b' ' | b'T' | b'C') {
                let mut start = bg + 1;
                while start < end && b[start] == b' ' {
                    start += 1;
                }
                bg = skip_item(b, bg, end, b"]");
                let id_size = bg.saturating_sub(start);
                if id_size < 20 {
                    let id = &b[start..start + id_size.saturating_sub(1)];
                    let id = &id[..id.iter().position(|&c| c == 0).unwrap_or(id.len())];
                    if !id.is_empty() {
                        rec.caller = Some(String::from_utf8_lossy(id).into_owned());
                    }
                }
                (msg_start, msg_len) = if bg < end {
                    (bg + 1, end - bg - 1)
                } else {
                    (end, 0)
                };
            } else {
                (msg_start, msg_len) = (bg.min(end), end.saturating_sub(bg));
            }
            let remaining = size - (end - next);
            let at_end = remaining == 0;
            self.next = (!at_end).then_some(end + 1);
            // The newline that ends the buffer is not part of the last message.
            if (at_end || at(end) != b'\n') && end > 0 && b[end - 1] == b'\n' {
                msg_len = msg_len.saturating_sub(1);
            }
            if self.next.is_some_and(|n| n >= b.len()) {
                self.next = None;
            }
            rec.message = &b[msg_start..msg_start + msg_len];
            rec.next_byte = at(msg_start + msg_len);
            return Some(rec);
        }
        self.next = None;
        None
    }
}

/// `SEC.USEC]` after the `[`: the index after the `]`, or `str0` when it does not read (the time
/// may then be half set, as in util-linux).
fn timestamp(b: &[u8], str0: usize, end: usize, tv: &mut Timeval) -> usize {
    if !has(b, str0, end, b']') {
        return str0;
    }
    let (sec, mut num_end) = strtol(b, str0);
    let Some(sec) = sec else {
        return str0;
    };
    tv.sec = sec;
    let mut str_ = str0;
    if b.get(num_end) == Some(&b'.') && b.get(num_end + 1).is_some_and(|&c| c != 0) {
        str_ = num_end + 1;
        let (usec, e) = strtol(b, str_);
        let Some(usec) = usec else {
            return str0;
        };
        tv.usec = usec;
        num_end = e;
    }
    if num_end == str_ || b.get(num_end) != Some(&b']') {
        return str0;
    }
    num_end + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Vec<(i32, i32, Timeval, Option<String>, String)> {
        syslog_records(buf)
            .map(|r| {
                (
                    r.level,
                    r.facility,
                    r.time,
                    r.caller,
                    String::from_utf8_lossy(r.message).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn records_lines_and_caller_ids() {
        let recs = all(b"<6>[    1.000500] [  T12] hello\n<12>[    2.000000] two\nlines\n");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0, 6);
        assert_eq!(recs[0].2, Timeval { sec: 1, usec: 500 });
        assert_eq!(recs[0].3.as_deref(), Some("T12"));
        assert_eq!(recs[0].4, "hello");
        assert_eq!((recs[1].0, recs[1].1), (4, 1));
        assert_eq!(recs[1].4, "two\nlines");
    }

    #[test]
    fn text_without_prefixes_and_garbage() {
        assert_eq!(all(b"plain text")[0].4, "plain text");
        assert!(all(b"").is_empty());
        assert!(all(b"\0\0\0").is_empty());
        for bad in [
            &b"<"[..],
            b"<6",
            b"[",
            b"[ ",
            b"<6>[",
            b"<6>[ 1.",
            b"<6>[ 1.]",
            b"[T",
            b"[T1",
            b"\n<",
            b"<6>[    1.000000] [T1]\n",
            b"<99999999999999999999>x",
        ] {
            let _ = all(bad);
        }
    }
}
