//! Level and facility names, and the `--level`/`--facility` lists (`err,warn`, `err+`, `+warn`).

/// Log level names, 0 to 7, with their descriptions.
pub const LEVELS: [(&str, &str); 8] = [
    ("emerg", "system is unusable"),
    ("alert", "action must be taken immediately"),
    ("crit", "critical conditions"),
    ("err", "error conditions"),
    ("warn", "warning conditions"),
    ("notice", "normal but significant condition"),
    ("info", "informational"),
    ("debug", "debug-level messages"),
];

/// Facility names, 0 to 23, with their descriptions.
pub const FACILITIES: [(&str, &str); 24] = [
    ("kern", "kernel messages"),
    ("user", "random user-level messages"),
    ("mail", "mail system"),
    ("daemon", "system daemons"),
    ("auth", "security/authorization messages"),
    ("syslog", "messages generated internally by syslogd"),
    ("lpr", "line printer subsystem"),
    ("news", "network news subsystem"),
    ("uucp", "UUCP subsystem"),
    ("cron", "clock daemon"),
    ("authpriv", "security/authorization messages (private)"),
    ("ftp", "FTP daemon"),
    ("res0", "reserved 0"),
    ("res1", "reserved 1"),
    ("res2", "reserved 2"),
    ("res3", "reserved 3"),
    ("local0", "local use 0"),
    ("local1", "local use 1"),
    ("local2", "local use 2"),
    ("local3", "local use 3"),
    ("local4", "local use 4"),
    ("local5", "local use 5"),
    ("local6", "local use 6"),
    ("local7", "local use 7"),
];

/// Why a name did not parse; the message util-linux prints.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    /// `unknown level 'X'` / `unknown facility 'X'` (X runs to the end of the list).
    Unknown(String),
    /// A number too large: `failed to parse level 'X'`, with strerror(ERANGE).
    Range(String),
    /// An empty item in a list: util-linux exits with status 1 and prints nothing.
    Empty,
}

/// Which table a name is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Log levels.
    Level,
    /// Facilities.
    Facility,
}

impl Kind {
    fn names(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Level => &LEVELS,
            Kind::Facility => &FACILITIES,
        }
    }

    /// The word used in messages.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Level => "level",
            Kind::Facility => "facility",
        }
    }
}

/// Parses one level or facility at the start of `rest`, `len` bytes long. A level with `len` 0
/// reads all of `rest` as a console level, 1 to 8 ("messages below this level").
pub fn parse_name(kind: Kind, rest: &str, len: usize) -> Result<usize, NameError> {
    let names = kind.names();
    let (len, offset) = if len == 0 {
        (rest.len(), usize::from(kind == Kind::Level))
    } else {
        (len, 0)
    };
    let b = rest.as_bytes();
    if b.first().is_some_and(u8::is_ascii_digit) {
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        match rest[..digits].parse::<i64>() {
            Ok(x) => {
                let x = x - offset as i64;
                if digits == len && x >= 0 && (x as usize) < names.len() {
                    return Ok(x as usize + offset);
                }
            }
            Err(_) => return Err(NameError::Range(rest.to_string())),
        }
    } else {
        let word = &b[..len.min(b.len())];
        if let Some(i) = names
            .iter()
            .position(|(n, _)| n.len() == word.len() && n.as_bytes().eq_ignore_ascii_case(word))
        {
            return Ok(i + offset);
        }
    }
    Err(NameError::Unknown(rest.to_string()))
}

/// Parses a comma-separated list into `bits` (one flag per level or facility). With ranges
/// allowed (levels), `NAME+` adds every more severe level and `+NAME` every less severe one.
pub fn parse_list(kind: Kind, list: &str, bits: &mut [bool]) -> Result<(), NameError> {
    let ranges = kind == Kind::Level;
    let b = list.as_bytes();
    let mut begin: Option<usize> = None;
    let mut p = 0;
    while p < b.len() {
        let mut end = None;
        if begin.is_none() {
            begin = Some(p);
        }
        if b[p] == b',' {
            end = Some(p);
        }
        if p + 1 == b.len() {
            end = Some(p + 1);
        }
        let (Some(mut bg), Some(mut en)) = (begin, end) else {
            p += 1;
            continue;
        };
        if en <= bg {
            return Err(NameError::Empty);
        }
        let (mut lower, mut higher) = (false, false);
        if ranges {
            if b[en - 1] == b'+' {
                en -= 1;
                lower = true;
            } else if b[bg] == b'+' {
                bg += 1;
                higher = true;
            }
        }
        let bit = parse_name(kind, &list[bg..], en.saturating_sub(bg))?;
        if let Some(slot) = bits.get_mut(bit) {
            *slot = true;
        }
        let n = bits.len();
        if lower {
            bits[..bit.min(n)].iter_mut().for_each(|x| *x = true);
        } else if higher {
            bits[(bit + 1).min(n)..].iter_mut().for_each(|x| *x = true);
        }
        begin = None;
        if en >= b.len() {
            break;
        }
        p += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(list: &str) -> Result<Vec<usize>, NameError> {
        let mut bits = [false; 8];
        parse_list(Kind::Level, list, &mut bits)?;
        Ok((0..8).filter(|&i| bits[i]).collect())
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(levels("err,WARN").unwrap(), [3, 4]);
        assert_eq!(levels("err+").unwrap(), [0, 1, 2, 3]);
        assert_eq!(levels("+notice").unwrap(), [5, 6, 7]);
        assert_eq!(levels("7").unwrap(), [7]);
        assert_eq!(levels("8"), Err(NameError::Unknown("8".into())));
        assert_eq!(levels("foo,err"), Err(NameError::Unknown("foo,err".into())));
        // A lone '+' is read as a console level, which '+' is not either.
        assert_eq!(levels("+"), Err(NameError::Unknown("+".into())));
        assert_eq!(levels(",err"), Err(NameError::Empty));
        let mut fac = [false; 24];
        assert_eq!(
            parse_list(Kind::Facility, ",", &mut fac),
            Err(NameError::Unknown(",".into()))
        );
        parse_list(Kind::Facility, "user,12", &mut fac).unwrap();
        assert!(fac[1] && fac[12] && !fac[0]);
    }

    #[test]
    fn console_levels_count_from_one() {
        assert_eq!(parse_name(Kind::Level, "8", 0), Ok(8));
        assert_eq!(parse_name(Kind::Level, "debug", 0), Ok(8));
        assert_eq!(parse_name(Kind::Level, "emerg", 0), Ok(1));
        assert!(parse_name(Kind::Level, "0", 0).is_err());
        assert!(matches!(
            parse_name(Kind::Level, "99999999999999999999", 0),
            Err(NameError::Range(_))
        ));
    }
}
