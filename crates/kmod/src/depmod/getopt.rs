//! GNU `getopt_long` as kmod's tools use it: short option clusters (`-an`), required arguments
//! attached or separate (`-bDIR`, `-b DIR`, `--basedir=DIR`, `--basedir DIR`), unambiguous
//! abbreviations of long options, `--` ending the options, and non-options anywhere (GNU
//! permutes them to the end). Errors are worded as glibc words them.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// A long option: its name, whether it takes an argument, and the short option it stands for.
pub struct LongOption {
    pub name: &'static str,
    pub has_arg: bool,
    pub short: u8,
}

/// One option found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The short option character it stands for.
    pub short: u8,
    /// The long option's index in the table when it was given in long form.
    pub long_index: Option<usize>,
    /// Its argument.
    pub arg: Option<OsString>,
}

/// Parses `args` (without `args[0]`) against `shorts` (getopt's option string: a letter, with
/// `:` after it when it takes an argument) and `longs`. Yields the options in order; an error
/// item is glibc's message (without the program name and `: ` before it), after which the
/// caller stops as kmod does. The non-options, in order, are in `operands` once the iterator
/// is done.
pub struct Getopt<'a> {
    args: Vec<Vec<u8>>,
    index: usize,
    /// Position inside a short option cluster.
    cluster: Option<(usize, usize)>,
    shorts: &'a [u8],
    longs: &'a [LongOption],
    pub operands: Vec<OsString>,
}

impl<'a> Getopt<'a> {
    pub fn new(args: &[OsString], shorts: &'a [u8], longs: &'a [LongOption]) -> Getopt<'a> {
        Getopt {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            index: 0,
            cluster: None,
            shorts,
            longs,
            operands: Vec::new(),
        }
    }

    fn takes_arg(&self, c: u8) -> Option<bool> {
        if c == b':' {
            return None;
        }
        let at = self.shorts.iter().position(|&s| s == c)?;
        Some(self.shorts.get(at + 1) == Some(&b':'))
    }

    fn next_arg(&mut self) -> Option<OsString> {
        let arg = self.args.get(self.index)?.clone();
        self.index += 1;
        Some(OsString::from_vec(arg))
    }

    fn long(&mut self, body: &[u8]) -> Result<Found, String> {
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
            None => (body, None),
        };
        let shown = String::from_utf8_lossy(name);
        let exact = self.longs.iter().position(|o| o.name.as_bytes() == name);
        let index = match exact {
            Some(i) => i,
            None => {
                let candidates: Vec<usize> = (0..self.longs.len())
                    .filter(|&i| self.longs[i].name.as_bytes().starts_with(name))
                    .collect();
                let Some(&first) = candidates.first() else {
                    return Err(format!(
                        "unrecognized option '--{}'",
                        String::from_utf8_lossy(body)
                    ));
                };
                let same = |i: usize| {
                    self.longs[i].has_arg == self.longs[first].has_arg
                        && self.longs[i].short == self.longs[first].short
                };
                if !candidates.iter().all(|&i| same(i)) {
                    let names: String = candidates
                        .iter()
                        .map(|&i| format!(" '--{}'", self.longs[i].name))
                        .collect();
                    return Err(format!(
                        "option '--{shown}' is ambiguous; possibilities:{names}"
                    ));
                }
                first
            }
        };
        let option = &self.longs[index];
        let arg = match (option.has_arg, value) {
            (false, Some(_)) => {
                return Err(format!(
                    "option '--{}' doesn't allow an argument",
                    option.name
                ))
            }
            (false, None) => None,
            (true, Some(v)) => Some(OsString::from_vec(v.to_vec())),
            (true, None) => match self.next_arg() {
                Some(a) => Some(a),
                None => return Err(format!("option '--{}' requires an argument", option.name)),
            },
        };
        Ok(Found {
            short: option.short,
            long_index: Some(index),
            arg,
        })
    }
}

impl Iterator for Getopt<'_> {
    type Item = Result<Found, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((arg, pos)) = self.cluster {
                let bytes = &self.args[arg];
                let Some(&c) = bytes.get(pos) else {
                    self.cluster = None;
                    continue;
                };
                let rest = bytes[pos + 1..].to_vec();
                let Some(takes_arg) = self.takes_arg(c) else {
                    self.cluster = (!rest.is_empty()).then_some((arg, pos + 1));
                    return Some(Err(format!(
                        "invalid option -- '{}'",
                        String::from_utf8_lossy(&[c])
                    )));
                };
                if !takes_arg {
                    self.cluster = Some((arg, pos + 1));
                    return Some(Ok(Found {
                        short: c,
                        long_index: None,
                        arg: None,
                    }));
                }
                self.cluster = None;
                let value = if rest.is_empty() {
                    match self.next_arg() {
                        Some(a) => a,
                        None => {
                            return Some(Err(format!(
                                "option requires an argument -- '{}'",
                                String::from_utf8_lossy(&[c])
                            )))
                        }
                    }
                } else {
                    OsString::from_vec(rest)
                };
                return Some(Ok(Found {
                    short: c,
                    long_index: None,
                    arg: Some(value),
                }));
            }
            let arg = self.args.get(self.index)?.clone();
            self.index += 1;
            if arg == b"--" {
                while let Some(rest) = self.next_arg() {
                    self.operands.push(rest);
                }
                return None;
            }
            if let Some(body) = arg.strip_prefix(b"--") {
                return Some(self.long(body));
            }
            if arg.len() > 1 && arg[0] == b'-' {
                self.cluster = Some((self.index - 1, 1));
                continue;
            }
            self.operands.push(OsString::from_vec(arg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGS: &[LongOption] = &[
        LongOption {
            name: "all",
            has_arg: false,
            short: b'a',
        },
        LongOption {
            name: "basedir",
            has_arg: true,
            short: b'b',
        },
        LongOption {
            name: "show",
            has_arg: false,
            short: b'n',
        },
        LongOption {
            name: "symvers",
            has_arg: true,
            short: b'E',
        },
        LongOption {
            name: "dry-run",
            has_arg: false,
            short: b'n',
        },
    ];

    type Parsed = Vec<Result<(char, Option<String>), String>>;

    fn parse(args: &[&str]) -> (Parsed, Vec<String>) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut g = Getopt::new(&args, b"ab:nE:", LONGS);
        let found = g
            .by_ref()
            .map(|r| {
                r.map(|f| {
                    (
                        f.short as char,
                        f.arg.map(|a| a.to_string_lossy().into_owned()),
                    )
                })
            })
            .collect();
        let operands = g
            .operands
            .iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        (found, operands)
    }

    #[test]
    fn shorts_longs_and_operands() {
        let (found, operands) = parse(&[
            "6.1",
            "-anb",
            "/x",
            "--basedir=/y",
            "--bas",
            "/z",
            "f",
            "-bq",
        ]);
        assert_eq!(
            found,
            [
                Ok(('a', None)),
                Ok(('n', None)),
                Ok(('b', Some("/x".into()))),
                Ok(('b', Some("/y".into()))),
                Ok(('b', Some("/z".into()))),
                Ok(('b', Some("q".into()))),
            ]
        );
        assert_eq!(operands, ["6.1", "f"]);
        let (_, operands) = parse(&["-a", "--", "-n", "x"]);
        assert_eq!(operands, ["-n", "x"]);
    }

    #[test]
    fn glibc_messages() {
        assert_eq!(parse(&["-x"]).0, [Err("invalid option -- 'x'".into())]);
        assert_eq!(
            parse(&["-b"]).0,
            [Err("option requires an argument -- 'b'".into())]
        );
        assert_eq!(
            parse(&["--basedir"]).0,
            [Err("option '--basedir' requires an argument".into())]
        );
        assert_eq!(
            parse(&["--all=1"]).0,
            [Err("option '--all' doesn't allow an argument".into())]
        );
        assert_eq!(
            parse(&["--nope=1"]).0,
            [Err("unrecognized option '--nope=1'".into())]
        );
        assert_eq!(
            parse(&["--s"]).0,
            [Err(
                "option '--s' is ambiguous; possibilities: '--show' '--symvers'".into()
            )]
        );
        // A unique prefix is that option.
        assert_eq!(parse(&["--d"]).0, [Ok(('n', None))]);
    }
}
