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
    /// Whether the locale's character set is UTF-8 (valid multibyte characters pass through).
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
    fn safe_write(&mut self, buf: &[u8], after: u8) -> io::Result<()> {
        let mut i = 0;
        while i < buf.len() {
            let c = buf[i];
            let mut len = 1;
            let mut hex = false;
            if !self.style.noescape {
                if c == 0 {
                    hex = true;
                } else if c >= 0x80 && self.style.utf8 {
                    match utf8_char(&buf[i..]) {
                        Some((ch, n)) => {
                            len = n;
                            hex = ch.is_control();
                        }
                        None => hex = true,
                    }
                } else {
                    hex = !is_print(c) && !is_space(c);
                }
            }
            let chunk = &buf[i..i + len];
            if hex {
                for b in chunk {
                    write!(self.out, "\\x{b:02x}")?;
                }
            } else if c == b'\n' && buf.get(i + 1).copied().unwrap_or(after) != 0 && self.indent > 0
            {
                self.out.write_all(b"\n")?;
                write!(self.out, "{:w$}", "", w = self.indent)?;
            } else {
                self.out.write_all(chunk)?;
            }
            i += len;
        }
        Ok(())
    }

    /// Prints a whole syslog buffer as it is (`--raw`), escaped, ending with a newline.
    pub fn raw(&mut self, buf: &[u8]) -> io::Result<()> {
        self.indent = 0;
        self.safe_write(buf, 0)?;
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

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The UTF-8 character at the start of `b` and its length, if it is a valid one.
fn utf8_char(b: &[u8]) -> Option<(char, usize)> {
    let n = match b[0] {
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
