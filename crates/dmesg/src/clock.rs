//! Wall-clock time for the `ctime`, `reltime` and `iso` formats and for `--since`/`--until`:
//! the C library's local time (honouring `TZ`), the boot time, and util-linux's timestamp syntax.

use std::ffi::{CStr, CString};

/// Broken-down local time: the fields the formats use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalTime {
    /// Minute of the hour.
    pub min: i32,
    /// Hour of the day.
    pub hour: i32,
    /// Day of the year.
    pub yday: i32,
    tm: Option<Tm>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tm {
    sec: i32,
    min: i32,
    hour: i32,
    mday: i32,
    mon: i32,
    year: i32,
    wday: i32,
    yday: i32,
    isdst: i32,
    gmtoff: i64,
}

fn zero_tm() -> libc::tm {
    // SAFETY: `tm` is plain data; all-zero is a valid value (tm_zone null).
    unsafe { std::mem::zeroed() }
}

fn from_libc(t: &libc::tm) -> Tm {
    Tm {
        sec: t.tm_sec,
        min: t.tm_min,
        hour: t.tm_hour,
        mday: t.tm_mday,
        mon: t.tm_mon,
        year: t.tm_year,
        wday: t.tm_wday,
        yday: t.tm_yday,
        isdst: t.tm_isdst,
        gmtoff: t.tm_gmtoff,
    }
}

fn to_libc(t: &Tm) -> libc::tm {
    let mut x = zero_tm();
    x.tm_sec = t.sec;
    x.tm_min = t.min;
    x.tm_hour = t.hour;
    x.tm_mday = t.mday;
    x.tm_mon = t.mon;
    x.tm_year = t.year;
    x.tm_wday = t.wday;
    x.tm_yday = t.yday;
    x.tm_isdst = t.isdst;
    x.tm_gmtoff = t.gmtoff;
    x
}

/// `localtime_r` of seconds since the epoch.
pub fn localtime(secs: i64) -> LocalTime {
    let t: libc::time_t = secs;
    let mut tm = zero_tm();
    // SAFETY: both pointers are valid for the call; localtime_r writes only `tm`.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return LocalTime::default();
    }
    let tm = from_libc(&tm);
    LocalTime {
        min: tm.min,
        hour: tm.hour,
        yday: tm.yday,
        tm: Some(tm),
    }
}

/// `strftime` in the C locale; empty when it fails.
pub fn strftime(t: &LocalTime, format: &str) -> String {
    let Some(tm) = t.tm else {
        return String::new();
    };
    let tm = to_libc(&tm);
    let Ok(fmt) = CString::new(format) else {
        return String::new();
    };
    let mut buf = [0u8; 128];
    // SAFETY: strftime writes at most buf.len() bytes including the NUL.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            fmt.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// ISO 8601 with a comma before the microseconds and the zone offset:
/// `2009-02-13T23:31:30,123456+00:00`.
pub fn iso(usec: i64) -> String {
    let secs = usec.div_euclid(1_000_000);
    let frac = usec.rem_euclid(1_000_000);
    let lt = localtime(secs);
    let Some(tm) = lt.tm else {
        return "(null)".into();
    };
    let gmtoff = if tm.isdst < 0 { 0 } else { tm.gmtoff };
    let tmin = gmtoff / 60;
    format!(
        "{:4}-{:02}-{:02}T{:02}:{:02}:{:02},{:06}{:+03}:{:02}",
        i64::from(tm.year) + 1900,
        tm.mon + 1,
        tm.mday,
        tm.hour,
        tm.min,
        tm.sec,
        frac,
        tmin / 60,
        (tmin % 60).abs()
    )
}

fn clock(id: libc::clockid_t) -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec.
    let r = unsafe { libc::clock_gettime(id, &mut ts) };
    (r == 0).then(|| ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000)
}

/// When the system booted, in microseconds since the epoch, and the time spent suspended since.
/// `DMESG_TEST_BOOTIME=SEC.USEC` fixes the boot time (and no suspend), as util-linux's tests do.
pub fn boot_time(test_boot_time: Option<&str>) -> Option<(i64, i64)> {
    if let Some(v) = test_boot_time {
        if let Some((s, u)) = v.split_once('.') {
            let num = |x: &str| -> Option<i64> {
                let d = x.len() - x.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                x[..d].parse().ok()
            };
            if let (Some(s), Some(u)) = (num(s), num(u)) {
                return Some((s * 1_000_000 + u, 0));
            }
        }
    }
    let now = clock(libc::CLOCK_REALTIME)?;
    let boot = clock(libc::CLOCK_BOOTTIME)?;
    let mono = clock(libc::CLOCK_MONOTONIC).unwrap_or(boot);
    Some((now - boot, boot - mono))
}

fn mktime(tm: &Tm) -> Option<(i64, i32)> {
    let mut t = to_libc(tm);
    // SAFETY: mktime normalises `t` in place and returns the time.
    let x = unsafe { libc::mktime(&mut t) };
    (x != -1).then_some((x, t.tm_wday))
}

fn strptime(s: &str, fmt: &str, tm: &mut Tm) -> Option<usize> {
    let cs = CString::new(s).ok()?;
    let cf = CString::new(fmt).ok()?;
    let mut t = to_libc(tm);
    // SAFETY: strptime reads the two strings and writes `t`; the result points into `cs`.
    let end = unsafe { libc::strptime(cs.as_ptr(), cf.as_ptr(), &mut t) };
    if end.is_null() {
        return None;
    }
    // SAFETY: `end` points into `cs`, which is still alive.
    let consumed = cs.as_bytes().len() - unsafe { CStr::from_ptr(end) }.to_bytes().len();
    *tm = from_libc(&t);
    Some(consumed)
}

const SEC: u64 = 1_000_000;

/// A duration as systemd and util-linux write them: `5min`, `1h 30m`, `2.5s`, `100ms`.
fn parse_sec(t: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 26] = [
        ("seconds", SEC),
        ("second", SEC),
        ("sec", SEC),
        ("s", SEC),
        ("minutes", 60 * SEC),
        ("minute", 60 * SEC),
        ("min", 60 * SEC),
        ("months", 2_629_800 * SEC),
        ("month", 2_629_800 * SEC),
        ("msec", 1000),
        ("ms", 1000),
        ("m", 60 * SEC),
        ("hours", 3600 * SEC),
        ("hour", 3600 * SEC),
        ("hr", 3600 * SEC),
        ("h", 3600 * SEC),
        ("days", 86400 * SEC),
        ("day", 86400 * SEC),
        ("d", 86400 * SEC),
        ("weeks", 7 * 86400 * SEC),
        ("week", 7 * 86400 * SEC),
        ("w", 7 * 86400 * SEC),
        ("years", 31_557_600 * SEC),
        ("year", 31_557_600 * SEC),
        ("y", 31_557_600 * SEC),
        ("usec", 1),
    ];
    let ws = |s: &str| s.trim_start_matches([' ', '\t', '\n', '\r']).len();
    let mut p = t;
    let mut total: u64 = 0;
    let mut something = false;
    loop {
        p = &p[p.len() - ws(p)..];
        if p.is_empty() {
            return something.then_some(total);
        }
        let digits = p.len() - p.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 && !p.starts_with('.') {
            return None;
        }
        let whole: u64 = if digits == 0 {
            0
        } else {
            p[..digits].parse().ok()?
        };
        let mut e = &p[digits..];
        let (mut frac, mut ndig) = (0u64, 0u32);
        if let Some(rest) = e.strip_prefix('.') {
            let n = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if n == 0 {
                return None;
            }
            frac = rest[..n].parse().ok()?;
            ndig = n as u32;
            e = &rest[n..];
        }
        e = &e[e.len() - ws(e)..];
        let (suffix, unit) = UNITS
            .iter()
            .chain([("us", 1u64), ("", SEC)].iter())
            .find(|(s, _)| e.starts_with(s))
            .copied()?;
        let mut k = frac.checked_mul(unit)?;
        for _ in 0..ndig {
            k /= 10;
        }
        total = total
            .checked_add(whole.checked_mul(unit)?)?
            .checked_add(k)?;
        p = &e[suffix.len()..];
        something = true;
    }
}

fn subseconds(t: &str) -> Option<u64> {
    let rest = t.strip_prefix(['.', ','])?;
    let mut ret = 0;
    let mut factor = SEC / 10;
    for c in rest.bytes() {
        if !c.is_ascii_digit() || factor < 1 {
            return None;
        }
        ret += u64::from(c - b'0') * factor;
        factor /= 10;
    }
    Some(ret)
}

/// A point in time as util-linux's `--since`/`--until` take it, in microseconds since the epoch:
/// `@EPOCH[.frac]`, `now`, `today`, `yesterday`, `tomorrow`, `+5min`, `-1h`, `3 hours ago`,
/// `2024-01-02 03:04[:05[.frac]]` (also with `T`), `2024-01-02`, `03:04[:05]`, `20240102030405`,
/// optionally after a weekday name.
pub fn parse_timestamp(t: &str, now_secs: i64) -> Option<u64> {
    let mut tm = localtime(now_secs).tm?;
    tm.isdst = -1;
    let (mut plus, mut minus, mut ret) = (0u64, 0u64, 0u64);
    let mut weekday = None;
    let midnight = |tm: &mut Tm| {
        tm.sec = 0;
        tm.min = 0;
        tm.hour = 0;
    };
    'parsed: {
        match t {
            "now" => break 'parsed,
            "today" => {
                midnight(&mut tm);
                break 'parsed;
            }
            "yesterday" => {
                tm.mday -= 1;
                midnight(&mut tm);
                break 'parsed;
            }
            "tomorrow" => {
                tm.mday += 1;
                midnight(&mut tm);
                break 'parsed;
            }
            _ => {}
        }
        if let Some(r) = t.strip_prefix('+') {
            plus = parse_sec(r)?;
            break 'parsed;
        }
        if let Some(r) = t.strip_prefix('-') {
            minus = parse_sec(r)?;
            break 'parsed;
        }
        if let Some(r) = t.strip_prefix('@') {
            let r2 = r.trim_start();
            let sign = usize::from(r2.starts_with(['-', '+']));
            let digits = r2[sign..].len()
                - r2[sign..]
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            if digits == 0 {
                return None;
            }
            let secs: i64 = r2[..sign + digits].parse().ok()?;
            tm = localtime(secs).tm?;
            let rest = &r2[sign + digits..];
            if rest.is_empty() {
                break 'parsed;
            }
            ret = subseconds(rest)?;
            break 'parsed;
        }
        if let Some(r) = t.strip_suffix(" ago") {
            minus = parse_sec(r)?;
            break 'parsed;
        }
        let mut t = t;
        const DAYS: [(&str, i32); 14] = [
            ("Sunday", 0),
            ("Sun", 0),
            ("Monday", 1),
            ("Mon", 1),
            ("Tuesday", 2),
            ("Tue", 2),
            ("Wednesday", 3),
            ("Wed", 3),
            ("Thursday", 4),
            ("Thu", 4),
            ("Friday", 5),
            ("Fri", 5),
            ("Saturday", 6),
            ("Sat", 6),
        ];
        for (name, nr) in DAYS {
            let n = name.len();
            if t.len() > n
                && t.as_bytes()[..n].eq_ignore_ascii_case(name.as_bytes())
                && t.as_bytes()[n] == b' '
            {
                weekday = Some(nr);
                t = &t[n + 1..];
                break;
            }
        }
        let copy = tm;
        // Formats with optional sub-seconds, then formats that zero what they leave out.
        for (fmt, zero) in [
            ("%y-%m-%d %H:%M:%S", 0),
            ("%Y-%m-%d %H:%M:%S", 0),
            ("%Y-%m-%dT%H:%M:%S", 0),
            ("%y-%m-%d %H:%M", 1),
            ("%Y-%m-%d %H:%M", 1),
            ("%y-%m-%d", 3),
            ("%Y-%m-%d", 3),
            ("%H:%M:%S", 0),
            ("%H:%M", 1),
            ("%Y%m%d%H%M%S", 0),
        ] {
            tm = copy;
            let Some(n) = strptime(t, fmt, &mut tm) else {
                continue;
            };
            let rest = &t[n..];
            if rest.is_empty() {
                if zero >= 1 {
                    tm.sec = 0;
                }
                if zero >= 3 {
                    tm.min = 0;
                    tm.hour = 0;
                }
                break 'parsed;
            }
            if zero == 0 {
                if let Some(s) = subseconds(rest) {
                    ret = s;
                    break 'parsed;
                }
            }
        }
        return None;
    }
    let (x, wday) = mktime(&tm)?;
    if weekday.is_some_and(|w| w != wday) {
        return None;
    }
    ret = ret.checked_add(u64::try_from(x).ok()?.checked_mul(SEC)?)?;
    if minus > ret {
        return None;
    }
    ret.checked_add(plus)?.checked_sub(minus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() {
        std::env::set_var("TZ", "UTC");
    }

    #[test]
    fn epoch_relative_and_dates() {
        utc();
        let now = 1_234_567_890;
        assert_eq!(
            parse_timestamp("@1234567890.124", now),
            Some(1_234_567_890_124_000)
        );
        assert_eq!(parse_timestamp("now", now), Some(1_234_567_890_000_000));
        assert_eq!(
            parse_timestamp("-1h 30min", now),
            Some(1_234_567_890_000_000 - 5_400_000_000)
        );
        assert_eq!(
            parse_timestamp("2 days ago", now),
            Some(1_234_567_890_000_000 - 172_800_000_000)
        );
        assert_eq!(
            parse_timestamp("2009-02-13 23:31:30.5", now),
            Some(1_234_567_890_500_000)
        );
        assert_eq!(
            parse_timestamp("Fri 2009-02-13", now),
            Some(1_234_483_200_000_000)
        );
        assert_eq!(parse_timestamp("Sat 2009-02-13", now), None);
        assert_eq!(parse_timestamp("today", now), Some(1_234_483_200_000_000));
        for bad in ["", "junk", "@", "@x", "+", "1.", "2009-13-45", "@1.2.3"] {
            assert_eq!(parse_timestamp(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        utc();
        let t = localtime(1_234_567_890);
        assert_eq!(
            strftime(&t, "%a %b %e %H:%M:%S %Y"),
            "Fri Feb 13 23:31:30 2009"
        );
        assert_eq!(strftime(&t, "%b%e %H:%M"), "Feb13 23:31");
        assert_eq!(
            iso(1_234_567_890_123_456),
            "2009-02-13T23:31:30,123456+00:00"
        );
        assert_eq!(
            boot_time(Some("1234567890.123456")),
            Some((1_234_567_890_123_456, 0))
        );
    }
}
