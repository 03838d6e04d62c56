//! `/dev/kmsg` records: `PRIO,SEQ,TS_USEC,FLAGS[,caller=ID];MESSAGE\n` and dictionary lines
//! ` KEY=VALUE\n`. The fields are read the way util-linux's dmesg reads them, so a record a kernel
//! never writes still reads as dmesg would show it.

use crate::cnum::{faclev, has, is_space, skip_item, strtoumax, unhexmangle};
use crate::Timeval;

/// One record of the kernel log buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Log level 0 (emerg) to 7 (debug); -1 when the priority field is not a number.
    pub level: i32,
    /// Syslog facility 0 (kern) to 24; -1 when the priority is not a number or out of range.
    pub facility: i32,
    /// Sequence number: one more per record; a gap means records were overwritten.
    pub seq: Option<u64>,
    /// Time since boot (zero when the field is missing).
    pub time: Timeval,
    /// `-` for a whole record, `c` for the start of a continued line, `+` for a continuation.
    pub flag: Option<u8>,
    /// The caller id (`T123` for a task, `C1` for a CPU) when the kernel adds it.
    pub caller: Option<String>,
    /// The message with `\xNN` escapes decoded.
    pub message: Vec<u8>,
    /// Dictionary entries (`SUBSYSTEM=...`, `DEVICE=...`).
    pub dict: Vec<(String, String)>,
}

impl KmsgRecord {
    /// The message as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }

    /// The timestamp in microseconds since boot.
    pub fn ts_usec(&self) -> u64 {
        self.time.usec().max(0) as u64
    }
}

/// Parses one record as one `read(2)` of `/dev/kmsg` returns it (or one NUL-separated record of a
/// saved kmsg file). `None` for an empty buffer; anything else gives a record, however odd.
pub fn parse_record(buf: &[u8]) -> Option<KmsgRecord> {
    // The record is a C string: it ends at the first NUL.
    let len = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    let b = &buf[..len];
    if b.is_empty() {
        return None;
    }
    let end = len - 1;
    let mut rec = KmsgRecord {
        level: -1,
        facility: -1,
        seq: None,
        time: Timeval::default(),
        flag: None,
        caller: None,
        message: Vec::new(),
        dict: Vec::new(),
    };
    let last_field = |p: usize| p >= len || (p > 0 && b[p - 1] == b';');
    let mut p = 0;
    while p < end && is_space(b[p]) {
        p += 1;
    }
    'fields: {
        // A) priority: facility and level.
        p = match faclev(b, p, end, b',') {
            Some((fac, lev, next)) => {
                rec.facility = fac;
                rec.level = lev;
                next
            }
            None => skip_item(b, p, end, b","),
        };
        if last_field(p) {
            break 'fields;
        }
        // B) sequence number.
        let start = p;
        p = skip_item(b, p, end, b",;");
        rec.seq = field_number(&b[start..p]);
        if last_field(p) {
            break 'fields;
        }
        // C) timestamp in microseconds.
        if has(b, p, end, b',') || has(b, p, end, b';') {
            let (usec, num_end) = strtoumax(b, p);
            if let Some(usec) = usec {
                if num_end <= end && matches!(b[num_end], b',' | b';') {
                    rec.time = Timeval {
                        sec: (usec / 1_000_000) as i64,
                        usec: (usec % 1_000_000) as i64,
                    };
                    p = num_end + 1;
                }
            }
        }
        if last_field(p) {
            break 'fields;
        }
        // D) flags, then optional fields of which only the caller id is read.
        let start = p;
        p = skip_item(b, p, end, b",;");
        if p == start + 2 {
            rec.flag = Some(b[start]);
        }
        p = caller_id(b, p, end, &mut rec.caller);
    }
    // E) the message text, up to the first raw newline.
    let start = p;
    let mut q = skip_item(b, p, end, b"\n") as isize;
    if b.get(q as usize).is_some_and(|&c| c != b'\n') {
        q -= 1;
    }
    let limit = (q - start as isize + 1).max(0) as usize;
    rec.message = unhexmangle(&b[start.min(len)..], limit);
    // F) dictionary lines after the message.
    if let Some(nl) = b[start.min(len)..].iter().position(|&c| c == b'\n') {
        for line in b[start + nl + 1..].split(|&c| c == b'\n') {
            let Some(kv) = line.strip_prefix(b" ") else {
                continue;
            };
            let kv = unhexmangle(kv, 0);
            if let Some(eq) = kv.iter().position(|&c| c == b'=') {
                rec.dict.push((
                    String::from_utf8_lossy(&kv[..eq]).into_owned(),
                    String::from_utf8_lossy(&kv[eq + 1..]).into_owned(),
                ));
            }
        }
    }
    Some(rec)
}

/// A sequence number field with its separator (`123,`).
fn field_number(field: &[u8]) -> Option<u64> {
    let digits = field.strip_suffix(b",").or(field.strip_suffix(b";"))?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `caller=ID` among the optional fields before the `;` that ends the header: sets `caller` and
/// returns the index after the field, or returns `p` unchanged.
fn caller_id(b: &[u8], p: usize, end: usize, caller: &mut Option<String>) -> usize {
    const PREFIX: &[u8] = b"caller=";
    let rest = &b[p.min(b.len())..];
    let cid = rest.windows(PREFIX.len()).position(|w| w == PREFIX);
    let semi = rest.iter().position(|&c| c == b';');
    match (cid, semi) {
        (Some(cid), Some(semi)) if cid < semi => {
            let next = p + cid + PREFIX.len();
            let after = skip_item(b, next, end, b",;");
            let size = after - next;
            // util-linux keeps the id in a 20-byte buffer.
            if size >= 20 {
                return p;
            }
            let id = &b[next..next + size.saturating_sub(1)];
            if !id.is_empty() {
                *caller = Some(String::from_utf8_lossy(id).into_owned());
            }
            after
        }
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_record() {
        let r = parse_record(b"6,339,5140900,-;NET: Registered protocol family 10\n").unwrap();
        assert_eq!((r.level, r.facility), (6, 0));
        assert_eq!(r.seq, Some(339));
        assert_eq!(
            r.time,
            Timeval {
                sec: 5,
                usec: 140900
            }
        );
        assert_eq!(r.flag, Some(b'-'));
        assert_eq!(r.text(), "NET: Registered protocol family 10");
        assert!(r.dict.is_empty());
    }

    #[test]
    fn parses_caller_dictionary_and_escapes() {
        let r = parse_record(
            b"12,5,100,c,caller=T42;a\\x09tab and \\\\ back\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:02.0\n",
        )
        .unwrap();
        assert_eq!((r.level, r.facility), (4, 1));
        assert_eq!(r.flag, Some(b'c'));
        assert_eq!(r.caller.as_deref(), Some("T42"));
        assert_eq!(r.message, b"a\ttab and \\\\ back");
        assert_eq!(r.dict[0], ("SUBSYSTEM".into(), "pci".into()));
        assert_eq!(r.dict[1].1, "+pci:0000:00:02.0");
    }

    #[test]
    fn short_and_odd_records_read_as_dmesg_reads_them() {
        // No timestamp field: the message starts after the ';'.
        let r = parse_record(b"6,7;hello\n").unwrap();
        assert_eq!((r.seq, r.text()), (Some(7), "hello".into()));
        // A priority that is not a number is skipped, not an error.
        let r = parse_record(b"x,1,2,-;m\n").unwrap();
        assert_eq!((r.level, r.facility, r.text()), (-1, -1, "m".into()));
        // A facility past the table is unknown; the level stays.
        let r = parse_record(b"1000,1,2,-;m\n").unwrap();
        assert_eq!((r.level, r.facility), (0, -1));
        assert_eq!(parse_record(b""), None);
        assert_eq!(parse_record(b"\0abc"), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        for bad in [
            &b";"[..],
            b",",
            b"1",
            b"\n",
            b"1,2;m",
            b"1,2,3,--;m",
            b"\\x",
            b"1,2,3;\\x4",
            b"6,1,2,-,caller=;",
            b"6,1,2,-,caller=T1",
            b"6,1,2,-;x",
            b"6,1,2,-;xy",
            b" \t",
        ] {
            let _ = parse_record(bad);
        }
    }
}
