//! Kernel log records as `/dev/kmsg` delivers them.
//!
//! A record is `PRIO,SEQ,TS_USEC,FLAGS[,MORE...];MESSAGE\n` followed by dictionary lines
//! ` KEY=VALUE\n`. PRIO holds the facility in its upper bits and the level in the lowest three;
//! non-printable bytes of MESSAGE arrive escaped as `\xNN`. Parsers here take bytes and return
//! values; they never open files.
#![deny(missing_docs)]

use std::fmt;

/// One record of the kernel log buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Log level, 0 (emerg) to 7 (debug).
    pub level: u8,
    /// Syslog facility number (0 for kernel messages).
    pub facility: u32,
    /// Sequence number: increases by one per record; gaps mean records were overwritten.
    pub seq: u64,
    /// Timestamp in microseconds since boot.
    pub ts_usec: u64,
    /// `-` for a whole record, `c` for the start of a continued line, `+` for a continuation.
    pub flag: char,
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
}

/// Why a record could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What was wrong.
    pub detail: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed kmsg record: {}", self.detail)
    }
}

impl std::error::Error for Error {}

fn err(detail: &'static str) -> Error {
    Error { detail }
}

fn number<T: std::str::FromStr>(field: Option<&[u8]>, what: &'static str) -> Result<T, Error> {
    let field = field.ok_or(err(what))?;
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(err(what))
}

/// Decodes `\xNN` escapes; other backslashes stay as they are.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && s.get(i + 1) == Some(&b'x') {
            let hex = s
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Parses one record as returned by one `read(2)` of `/dev/kmsg`.
pub fn parse_record(buf: &[u8]) -> Result<KmsgRecord, Error> {
    let semi = buf
        .iter()
        .position(|&b| b == b';')
        .ok_or(err("no ';' after the header"))?;
    let (header, rest) = (&buf[..semi], &buf[semi + 1..]);
    let mut fields = header.split(|&b| b == b',');
    let prio: u32 = number(fields.next(), "bad priority")?;
    let seq: u64 = number(fields.next(), "bad sequence number")?;
    let ts_usec: u64 = number(fields.next(), "bad timestamp")?;
    let flag = match fields.next() {
        Some([c]) => *c as char,
        Some(_) => return Err(err("bad flags")),
        None => '-',
    };
    let mut caller = None;
    for extra in fields {
        if let Some(v) = extra.strip_prefix(b"caller=") {
            caller = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    let mut lines = rest.split(|&b| b == b'\n');
    let message = unescape(lines.next().unwrap_or_default());
    let mut dict = Vec::new();
    for line in lines {
        let Some(kv) = line.strip_prefix(b" ") else {
            continue;
        };
        let kv = unescape(kv);
        if let Some(eq) = kv.iter().position(|&b| b == b'=') {
            dict.push((
                String::from_utf8_lossy(&kv[..eq]).into_owned(),
                String::from_utf8_lossy(&kv[eq + 1..]).into_owned(),
            ));
        }
    }
    Ok(KmsgRecord {
        level: (prio & 7) as u8,
        facility: prio >> 3,
        seq,
        ts_usec,
        flag,
        caller,
        message,
        dict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_record() {
        let r = parse_record(b"6,339,5140900,-;NET: Registered protocol family 10\n").unwrap();
        assert_eq!(r.level, 6);
        assert_eq!(r.facility, 0);
        assert_eq!(r.seq, 339);
        assert_eq!(r.ts_usec, 5140900);
        assert_eq!(r.flag, '-');
        assert_eq!(r.text(), "NET: Registered protocol family 10");
        assert!(r.dict.is_empty());
    }

    #[test]
    fn parses_caller_dictionary_and_escapes() {
        let r = parse_record(
            b"12,5,100,c,caller=T42;a\\x09tab and \\\\ back\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:02.0\n",
        )
        .unwrap();
        assert_eq!(r.level, 4);
        assert_eq!(r.facility, 1);
        assert_eq!(r.flag, 'c');
        assert_eq!(r.caller.as_deref(), Some("T42"));
        assert_eq!(r.message, b"a\ttab and \\\\ back");
        assert_eq!(r.dict[0], ("SUBSYSTEM".into(), "pci".into()));
        assert_eq!(r.dict[1].1, "+pci:0000:00:02.0");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            &b""[..],
            b";",
            b"x,1,2,-;m",
            b"1,2;m",
            b"1,2,3,--;m",
            b"\\x",
            b"1,2,3;\\x4",
        ] {
            let _ = parse_record(bad);
        }
        assert!(parse_record(b"6,1,2,-").is_err());
        assert_eq!(unescape(b"\\x4"), b"\\x4");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }
}
