//! One record on the output, as util-linux prints it: decode prefix, timestamps in the chosen
//! formats, caller id, the message with non-printable bytes escaped and continuation lines
//! indented under the first, colors, or a JSON object.

use crate::clock;
use crate::names::{FACILITIES, LEVELS};
use kmodlab_kmsg::Timeval;
use std::io::{self, Write};

/// A timestamp format (`--time-format` and the options that choose one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// `notime`.
    None,
    /// `ctime`: `[Fri Feb 13 23:31:30 2009]`.
    Ctime,
    /// `ctime` and `delta` together.
    CtimeDelta,
    /// `delta`: `[<    1.000000>]`.
    Delta,
    /// `reltime`: `[Feb13 23:31]` when the minute changes, `[  +1.000000]` otherwise.
    Reltime,
    /// `raw`, the default: `[    1.000000]`.
    Time,
    /// `raw` and `delta` together (`--show-delta`).
    TimeDelta,
    /// `iso`: `2009-02-13T23:31:30,123456+00:00`.
    Iso,
}

/// Colors of util-linux's default dmesg scheme.
mod color {
    pub const SUBSYS: &str = "\x1b[33m";
    pub const TIME: &str = "\x1b[32m";
    pub const TIMEBREAK: &str = "\x1b[32m\x1b[1m";
    pub const ALERT: &str = "\x1b[7m\x1b[31m";
    pub const CRIT: &str = "\x1b[1m\x1b[31m";
    pub const ERR: &str = "\x1b[31m";
    pub const WARN: &str = "\x1b[1m";
    pub const SEGFAULT: &str = "\x1b[2m\x1b[31m";
    pub const RESET: &str = "\x1b[0m";
}

/// How records are printed (fixed for a run).
#[derive(Clone, Debug)]
pub struct Style {
    /// Timestamp formats in order; empty means the default.
    pub time_formats: Vec<TimeFormat>,
    /// `--raw`: `<PRI>[time] message`.
    pub raw: bool,
    /// `--noescape`.
    pub noescape: bool,
    /// `--decode`: `kern  :info  : `.
    pub decode: bool,
    /// `--color`.
    pub color: bool,
    /// `--json`.
    pub json: bool,
    /// `--force-prefix`: the prefix on every line of a multi-line message.
    pub force_prefix: bool,
    /// `--follow`: flush after each record.
    pub follow: bool,
    /// Width of the caller id field.
    pub caller_id_width: usize,
    /// Boot time plus time spent suspended, in microseconds since the epoch.
    pub boot_usec: i64,
    /// Whether the locale's character set is UTF-8: a valid multibyte character then passes
    /// through when the C library's classes for the locale call it printable or a space (the
    /// process's `LC_CTYPE` must be that locale, as [`crate::Env::current`] leaves it).
    pub utf8: bool,
}

impl Style {
    fn has(&self, f: TimeFormat) -> bool {
        if self.time_formats.is_empty() {
            f == TimeFormat::Time
        } else {
            self.time_formats.contains(&f)
        }
    }
}

/// One record to print.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// Level, -1 when unknown.
    pub level: i32,
    /// Facility, -1 when unknown.
    pub facility: i32,
    /// Time since boot.
    pub time: Timeval,
    /// Caller id.
    pub caller: Option<&'a str>,
    /// The message.
    pub message: &'a [u8],
    /// The byte after the message in its buffer (0 when none).
    pub next_byte: u8,
}

impl Record<'_> {
    fn facpri_valid(&self) -> bool {
        (0..LEVELS.len() as i32).contains(&self.level)
            && (0..FACILITIES.len() as i32).contains(&self.facility)
    }
}

/// Which records are shown.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Shown levels, when filtering by level.
    pub levels: Option<[bool; 8]>,
    /// Shown facilities, when filtering by facility.
    pub facilities: Option<[bool; 25]>,
    /// Only records after this wall-clock time (microseconds since the epoch).
    pub since: Option<u64>,
    /// Only records before this wall-clock time.
    pub until: Option<u64>,
}

/// Prints records one after another, keeping what the formats carry from one to the next.
pub struct Printer<'w> {
    out: &'w mut dyn Write,
    style: Style,
    filter: Filter,
    last_time: Timeval,
    last_tm: clock::LocalTime,
    indent: usize,
    json: Json,
}

impl<'w> Printer<'w> {
    /// A printer writing to `out`.
    pub fn new(out: &'w mut dyn Write, style: Style, filter: Filter) -> Printer<'w> {
        Printer {
            out,
            style,
            filter,
            last_time: Timeval::default(),
            last_tm: clock::LocalTime::default(),
            indent: 0,
            json: Json::default(),
        }
    }

    fn record_usec(&self, r: &Record) -> i64 {
        self.style.boot_usec.saturating_add(r.time.usec())
    }

    fn accept(&self, r: &Record) -> bool {
        if let Some(levels) = &self.filter.levels {
            if r.facility < 0 || !levels.get(r.level as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if let Some(fac) = &self.filter.facilities {
            if r.facility < 0 || !fac.get(r.facility as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        let t = self.record_usec(r);
        if self.filter.since.is_some_and(|s| s as i64 >= t) {
            return false;
        }
        if self.filter.until.is_some_and(|u| u as i64 <= t) {
            return false;
        }
        true
    }

    /// Prints one record (or nothing when the filters reject it).
    pub fn print(&mut self, r: &Record) -> io::Result<()> {
        if !self.accept(r) {
            // A rejected record still counts for the next delta.
            self.last_time = r.time;
            return Ok(());
        }
        if r.message.is_empty() {
            if !self.style.json {
                self.out.write_all(b"\n")?;
            }
            return Ok(());
        }
        let delta = if self.last_time.is_set() {
            (r.time.sec - self.last_time.sec) as f64
                + (r.time.usec - self.last_time.usec) as f64 / 1e6
        } else {
            0.0
        };
        self.last_time = r.time;
        if self.style.json {
            self.json.object_open(self.out)?;
        }
        let mut timebreak = false;
        let mut prefix_decode = String::new();
        let mut stamps = String::new();
        let st = &self.style;
        if st.raw {
            let pri = (r.facility << 3) | r.level;
            stamps = format!("<{pri}>[{:5}.{:06}] ", r.time.sec, r.time.usec);
            self.indent = stamps.len();
        } else {
            if !st.json && st.decode && r.facpri_valid() {
                prefix_decode = format!(
                    "{:<6}:{:<6}: ",
                    FACILITIES[r.facility as usize].0, LEVELS[r.level as usize].0
                );
            }
            let formats = if st.time_formats.is_empty() {
                vec![TimeFormat::Time]
            } else {
                st.time_formats.clone()
            };
            let mut ts = String::new();
            for f in formats {
                let wall = || clock::localtime(self.record_usec(r).div_euclid(1_000_000));
                let ctime = || clock::strftime(&wall(), "%a %b %e %H:%M:%S %Y");
                match f {
                    TimeFormat::None => self.indent = 0,
                    TimeFormat::Ctime => ts = format!("[{}] ", ctime()),
                    TimeFormat::CtimeDelta => ts = format!("[{} <{delta:12.6}>] ", ctime()),
                    TimeFormat::Delta => ts = format!("[<{delta:12.6}>] "),
                    TimeFormat::Reltime => {
                        let cur = wall();
                        if (cur.min, cur.hour, cur.yday)
                            != (self.last_tm.min, self.last_tm.hour, self.last_tm.yday)
                        {
                            timebreak = true;
                            ts = format!("[{}] ", clock::strftime(&cur, "%b%e %H:%M"));
                        } else if delta < 10.0 {
                            ts = format!("[  {delta:+8.6}] ");
                        } else {
                            ts = format!("[ {delta:+9.6}] ");
                        }
                        self.last_tm = cur;
                    }
                    TimeFormat::Time => {
                        ts = if st.json {
                            format!("{:5}.{:06}", r.time.sec, r.time.usec)
                        } else {
                            format!("[{:5}.{:06}] ", r.time.sec, r.time.usec)
                        }
                    }
                    TimeFormat::TimeDelta => {
                        ts = format!("[{:5}.{:06} <{delta:12.6}>] ", r.time.sec, r.time.usec)
                    }
                    TimeFormat::Iso => ts = format!("{} ", clock::iso(self.record_usec(r))),
                }
                if f != TimeFormat::None {
                    self.indent = ts.len();
                }
                if st.has(TimeFormat::None) {
                    break;
                }
                stamps.push_str(&ts);
            }
            self.indent += prefix_decode.len();
        }
        // The message, and with --force-prefix each further line, after the prefix.
        let lines: Vec<&[u8]> = if self.style.force_prefix {
            let upto = r.message.iter().position(|&c| c == 0);
            r.message[..upto.unwrap_or(r.message.len())]
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            vec![r.message]
        };
        for (n, line) in lines.iter().enumerate() {
            if n > 0 {
                self.out.write_all(b"\n")?;
            }
            self.prefix(r, &prefix_decode, &stamps, timebreak, n > 0)?;
            let next = if self.style.force_prefix {
                0
            } else {
                r.next_byte
            };
            self.message(r, line, next)?;
        }
        if lines.is_empty() {
            self.prefix(r, &prefix_decode, &stamps, timebreak, false)?;
        }
        if self.style.json {
            self.json.object_close(self.out)?;
            if self.style.follow {
                self.out.flush()?;
            }
        } else {
            self.out.write_all(b"\n")?;
            if self.style.follow {
                self.out.flush()?;
            }
        }
        Ok(())
    }

    fn prefix(
        &mut self,
        r: &Record,
        decode: &str,
        stamps: &str,
        timebreak: bool,
        again: bool,
    ) -> io::Result<()> {
        let st = &self.style;
        if !decode.is_empty() {
            self.out.write_all(decode.as_bytes())?;
        } else if st.json && r.facpri_valid() {
            if st.decode {
                self.json.value_str(
                    self.out,
                    "fac",
                    FACILITIES[r.facility as usize].0.as_bytes(),
                )?;
                self.json
                    .value_str(self.out, "pri", LEVELS[r.level as usize].0.as_bytes())?;
            } else {
                let pri = ((r.facility << 3) | r.level).to_string();
                self.json.value_raw(self.out, "pri", &pri)?;
            }
        }
        if !stamps.is_empty() {
            if st.color {
                let c = if timebreak {
                    color::TIMEBREAK
                } else {
                    color::TIME
                };
                self.out.write_all(c.as_bytes())?;
            }
            if !st.has(TimeFormat::Reltime) {
                if st.json {
                    self.json.value_raw(self.out, "time", stamps)?;
                } else {
                    self.out.write_all(stamps.as_bytes())?;
                }
            } else {
                let s = if again { "[  +0.000000] " } else { stamps };
                self.out.write_all(s.as_bytes())?;
            }
            if st.color {
                self.out.write_all(color::RESET.as_bytes())?;
            }
        }
        if let Some(caller) = r.caller {
            if st.json {
                self.json.value_str(self.out, "caller", caller.as_bytes())?;
            } else {
                let mut field = format!("[{caller:>w$}] ", w = st.caller_id_width);
                field.truncate(22);
                self.indent += field.len();
                self.out.write_all(field.as_bytes())?;
            }
        }
        Ok(())
    }

    fn message(&mut self, r: &Record, line: &[u8], next_byte: u8) -> io::Result<()> {
        if self.style.color {
            let mut line = line;
            if let Some(cut) = subsys_end(line) {
                self.out.write_all(color::SUBSYS.as_bytes())?;
                self.safe_write(&line[..cut], line[cut])?;
                self.out.write_all(color::RESET.as_bytes())?;
                line = &line[cut..];
            }
            let c = match r.level {
                1 => Some(color::ALERT),
                2 => Some(color::CRIT),
                3 => Some(color::ERR),
                4 => Some(color::WARN),
                _ => None,
            }
            .or_else(|| {
                line.windows(11)
                    .any(|w| w == b"segfault at")
                    .then_some(color::SEGFAULT)
            });
            if let Some(c) = c {
                self.out.write_all(c.as_bytes())?;
            }
            self.safe_write(line, next_byte)?;
            if c.is_some() {
                self.out.write_all(color::RESET.as_bytes())?;
            }
            Ok(())
        } else if self.style.json {
            self.json.value_str(self.out, "msg", line)
        } else {
            self.safe_write(line, next_byte)
        }
    }

    /// Writes `buf`, escaping what cannot be printed as `\xNN`, and indenting each line after a
    /// newline to the width of the prefix. `after` is the byte that follows `buf`.
    ///
    /// As util-linux decides it: NUL is escaped; in a UTF-8 locale a valid multibyte character
    /// is escaped (each of its bytes) unless `iswprint` or `iswspace` accepts it, and a byte that
    /// starts no valid character is escaped alone; any other byte is escaped unless it is ASCII
    /// printable or a space.
    fn safe_write(&mut self, buf: &[u8], after: u8) -> io::Result<()> {
        let mut rest = buf;
        while let Some(&c) = rest.first() {
            let mut len = 1;
            let mut hex = false;
            if !self.style.noescape {
                if c == 0 {
                    hex = true;
                } else if c >= 0x80 && self.style.utf8 {
                    match utf8_char(rest) {
                        Some((ch, n)) => {
                            len = n;
                            hex = !wide_printable(ch);
                        }
                        None => hex = true,
                    }
                } else {
                    hex = !is_print(c) && !kmodlab_cnum::is_space(c);
                }
            }
            let (chunk, tail) = rest.split_at(len.min(rest.len()));
            if hex {
                for b in chunk {
                    write!(self.out, "\\x{b:02x}")?;
                }
            } else if c == b'\n' && tail.first().copied().unwrap_or(after) != 0 && self.indent > 0 {
                self.out.write_all(b"\n")?;
                write!(self.out, "{:w$}", "", w = self.indent)?;
            } else {
                self.out.write_all(chunk)?;
            }
            rest = tail;
        }
        Ok(())
    }

    /// Prints a whole syslog buffer as it is (`--raw`), escaped, ending with a newline. The
    /// buffer is escaped `piece` bytes at a time, each piece on its own: util-linux writes a file
    /// it mapped page by page, so a multibyte character across two pages comes out escaped, as
    /// two broken halves (a syslog(2) buffer is one piece).
    pub fn raw(&mut self, buf: &[u8], piece: usize) -> io::Result<()> {
        self.indent = 0;
        for chunk in buf.chunks(piece.max(1)) {
            self.safe_write(chunk, 0)?;
        }
        if buf.last() != Some(&b'\n') {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Ends the output (closes the JSON document).
    pub fn finish(&mut self) -> io::Result<()> {
        self.json.finish(self.out)?;
        self.out.flush()
    }
}

fn is_print(c: u8) -> bool {
    (0x20..0x7f).contains(&c)
}

// glibc's wide character classes (the libc crate does not declare them; glibc's `wint_t` is an
// `unsigned int`).
extern "C" {
    fn iswprint(wc: libc::c_uint) -> libc::c_int;
    fn iswspace(wc: libc::c_uint) -> libc::c_int;
}

/// Whether a multibyte character is shown as it is: the C library's `iswprint` or `iswspace`
/// accepts it in the current `LC_CTYPE` (unassigned code points, noncharacters, C1 controls are
/// neither; U+2028 and U+2029 are spaces only).
fn wide_printable(ch: char) -> bool {
    let wc = libc::c_uint::from(ch);
    // SAFETY: both only read the locale's class tables.
    unsafe { iswprint(wc) != 0 || iswspace(wc) != 0 }
}

/// The UTF-8 character at the start of `b` and its length, if it is a valid one.
fn utf8_char(b: &[u8]) -> Option<(char, usize)> {
    let n = match *b.first()? {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(b.get(..n)?).ok()?;
    s.chars().next().map(|c| (c, n))
}

/// Where a `subsystem: ` prefix ends (after the blank that follows its colon).
fn subsys_end(m: &[u8]) -> Option<usize> {
    let mut p = 0;
    while p < m.len() {
        let d = p + m[p..].iter().position(|&c| c == b':')?;
        let left = m.len() - d - 1;
        if left == 0 {
            return None;
        }
        if left >= 2 && matches!(m[d + 1], b' ' | b'\t') {
            return Some(d + 2);
        }
        p = d + 1;
    }
    None
}

/// util-linux's pretty JSON writer, as far as dmesg uses it: `{"dmesg": [ {...},{...} ]}`.
#[derive(Default)]
struct Json {
    started: bool,
    after_close: bool,
}

impl Json {
    fn indent(out: &mut dyn Write, n: usize) -> io::Result<()> {
        for _ in 0..n {
            out.write_all(b"   ")?;
        }
        Ok(())
    }

    fn object_open(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if !self.started {
            out.write_all(b"{\n")?;
            Self::indent(out, 1)?;
            out.write_all(b"\"dmesg\": [\n")?;
            self.started = true;
            self.after_close = false;
        }
        if self.after_close {
            out.write_all(b",")?;
        } else {
            Self::indent(out, 2)?;
        }
        out.write_all(b"{\n")?;
        self.after_close = false;
        Ok(())
    }

    fn name(&mut self, out: &mut dyn Write, name: &str) -> io::Result<()> {
        if self.after_close {
            out.write_all(b",\n")?;
        }
        Self::indent(out, 3)?;
        write!(out, "\"{name}\": ")
    }

    fn value_raw(&mut self, out: &mut dyn Write, name: &str, v: &str) -> io::Result<()> {
        self.name(out, name)?;
        out.write_all(if v.is_empty() { b"null" } else { v.as_bytes() })?;
        self.after_close = true;
        Ok(())
    }

    fn value_str(&mut self, out: &mut dyn Write, name: &str, v: &[u8]) -> io::Result<()> {
        self.name(out, name)?;
        let v = &v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())];
        if v.is_empty() {
            out.write_all(b"null")?;
        } else {
            out.write_all(b"\"")?;
            for &c in v {
                match c {
                    b'"' | b'\\' => out.write_all(&[b'\\', c])?,
                    0x08 => out.write_all(b"\\b")?,
                    b'\t' => out.write_all(b"\\t")?,
                    b'\n' => out.write_all(b"\\n")?,
                    0x0c => out.write_all(b"\\f")?,
                    b'\r' => out.write_all(b"\\r")?,
                    c if c < 0x20 => write!(out, "\\u00{c:02x}")?,
                    c => out.write_all(&[c])?,
                }
            }
            out.write_all(b"\"")?;
        }
        self.after_close = true;
        Ok(())
    }

    fn object_close(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"\n")?;
        Self::indent(out, 2)?;
        out.write_all(b"}")?;
        self.after_close = true;
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.started {
            out.write_all(b"\n")?;
            Self::indent(out, 1)?;
            out.write_all(b"]\n}\n")?;
            self.started = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Makes the process's character classes those of C.UTF-8, as `dmesg` has them when run in
    /// that locale; false (and a note) when the locale is not installed here.
    fn utf8_ctype() -> bool {
        static SET: OnceLock<bool> = OnceLock::new();
        let set = *SET.get_or_init(|| {
            // SAFETY: called once; no test reads the locale's classes before this returns.
            unsafe { !libc::setlocale(libc::LC_CTYPE, c"C.UTF-8".as_ptr()).is_null() }
        });
        if !set {
            eprintln!("SKIPPED: the C.UTF-8 locale is not installed; UTF-8 cases not run");
        }
        set
    }

    fn style(utf8: bool, noescape: bool) -> Style {
        Style {
            time_formats: vec![TimeFormat::None],
            raw: false,
            noescape,
            decode: false,
            color: false,
            json: false,
            force_prefix: false,
            follow: false,
            caller_id_width: 0,
            boot_usec: 0,
            utf8,
        }
    }

    /// What `safe_write` makes of `buf` (no indentation).
    fn written(utf8: bool, noescape: bool, buf: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, style(utf8, noescape), Filter::default());
        p.safe_write(buf, 0).unwrap();
        out
    }

    fn utf8(buf: &[u8]) -> String {
        String::from_utf8(written(true, false, buf)).unwrap()
    }

    #[test]
    fn unassigned_and_nonprintable_code_points_are_escaped_in_utf8() {
        if !utf8_ctype() {
            return;
        }
        // U+0378 is unassigned: escaped byte by byte, as util-linux's iswprint check does.
        assert_eq!(utf8("a\u{378}b".as_bytes()), r"a\xcd\xb8b");
        // Noncharacters, a C1 control, an unassigned plane.
        assert_eq!(utf8("\u{fffe}".as_bytes()), r"\xef\xbf\xbe");
        assert_eq!(utf8("\u{10ffff}".as_bytes()), r"\xf4\x8f\xbf\xbf");
        assert_eq!(utf8("\u{85}".as_bytes()), r"\xc2\x85");
        assert_eq!(utf8("\u{40000}".as_bytes()), r"\xf1\x80\x80\x80");
    }

    #[test]
    fn printable_characters_and_spaces_pass_through_in_utf8() {
        if !utf8_ctype() {
            return;
        }
        for text in [
            "café naïve Ærø ß",
            "中文 日本語 한국어",
            "😀 €",
            "no\u{a0}break",
            // Line and paragraph separators are no printable characters but spaces.
            "line\u{2028}para\u{2029}",
        ] {
            assert_eq!(utf8(text.as_bytes()), text);
        }
    }

    #[test]
    fn control_bytes_are_escaped_in_every_locale() {
        let ctype = utf8_ctype();
        for utf8 in [false, true] {
            if utf8 && !ctype {
                continue;
            }
            let out = written(utf8, false, b"a\x01b\x1b[1m\x7f\0c\td\ne\r\x0b\x0c");
            assert_eq!(out, b"a\\x01b\\x1b[1m\\x7f\\x00c\td\ne\r\x0b\x0c");
        }
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        if !utf8_ctype() {
            return;
        }
        // A lone continuation byte, bytes that start nothing, a sequence cut short (in the
        // middle and at the end), a surrogate, an overlong NUL, a code point above U+10FFFF and
        // a five-byte sequence.
        assert_eq!(utf8(b"\x80\xff\xfe"), r"\x80\xff\xfe");
        assert_eq!(utf8(b"\xe4\xb8a\xe4\xb8"), r"\xe4\xb8a\xe4\xb8");
        assert_eq!(utf8(b"\xed\xa0\x80"), r"\xed\xa0\x80");
        assert_eq!(utf8(b"\xc0\x80"), r"\xc0\x80");
        assert_eq!(utf8(b"\xf4\x90\x80\x80"), r"\xf4\x90\x80\x80");
        assert_eq!(utf8(b"\xf8\x88\x80\x80\x80"), r"\xf8\x88\x80\x80\x80");
        // What follows a bad byte is read afresh.
        assert_eq!(utf8(b"\xff\xc3\xa9"), "\\xff\u{e9}");
    }

    #[test]
    fn outside_utf8_every_byte_above_ascii_is_escaped() {
        let out = written(false, false, "é\u{378}".as_bytes());
        assert_eq!(out, br"\xc3\xa9\xcd\xb8");
    }

    #[test]
    fn noescape_writes_every_byte_as_it_is() {
        let _ = utf8_ctype();
        for utf8 in [false, true] {
            let buf = b"\0\x01\xcd\xb8\xff\n";
            assert_eq!(written(utf8, true, buf), buf);
        }
    }

    /// `\xNN` back to its byte (the inputs below hold no backslash).
    fn unescape(out: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut rest = out;
        while let Some(&c) = rest.first() {
            let hex = rest
                .strip_prefix(b"\\x")
                .and_then(|h| h.get(..2))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    bytes.push(b);
                    rest = &rest[4..];
                }
                None => {
                    bytes.push(c);
                    rest = &rest[1..];
                }
            }
        }
        bytes
    }

    #[test]
    fn any_bytes_come_out_whole_escaped_or_not() {
        let _ = utf8_ctype();
        let some = [
            0x00, 0x0a, 0x41, 0x7f, 0x80, 0x85, 0xa0, 0xb8, 0xbf, 0xc2, 0xcd, 0xe0, 0xe4, 0xed,
            0xef, 0xf0, 0xf4, 0xf8, 0xfc, 0xff,
        ];
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|a| vec![a]).collect();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
        }
        for &a in &some {
            for &b in &some {
                for &c in &some {
                    for &d in &some {
                        inputs.push(vec![a, b, c, d]);
                    }
                }
            }
        }
        for utf8 in [false, true] {
            for input in &inputs {
                let out = written(utf8, false, input);
                if !input.contains(&b'\\') {
                    assert_eq!(unescape(&out), *input, "{input:x?}");
                }
            }
        }
    }

    #[test]
    fn raw_escapes_each_piece_on_its_own() {
        if !utf8_ctype() {
            return;
        }
        let raw = |buf: &[u8], piece| {
            let mut out = Vec::new();
            let mut p = Printer::new(&mut out, style(true, false), Filter::default());
            p.raw(buf, piece).unwrap();
            String::from_utf8(out).unwrap()
        };
        let buf = "<6>[    1.000000] é中\n".as_bytes();
        assert_eq!(raw(buf, buf.len()), "<6>[    1.000000] é中\n");
        // Pieces of 21 bytes end in the middle of 中 (bytes 20 to 22).
        assert_eq!(raw(buf, 21), "<6>[    1.000000] é\\xe4\\xb8\\xad\n");
        assert_eq!(raw(b"x", 1), "x\n");
    }
}
