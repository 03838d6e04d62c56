//! Command-line parsing as glibc's `getopt_long()` does it, byte for byte: options and operands
//! may be mixed (operands are collected in order, as GNU permutes them) unless
//! `POSIXLY_CORRECT` is set, `--` ends the options, long options may be abbreviated to any
//! unambiguous prefix, and the error messages are glibc's.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Whether a long option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    /// `--name` only; `--name=value` is an error.
    No,
    /// `--name=value` or `--name value`.
    Required,
}

/// One long option: its name, whether it takes an argument, and the short option it stands
/// for.
#[derive(Debug, Clone, Copy)]
pub struct LongOpt {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// Whether it takes an argument.
    pub has_arg: HasArg,
    /// The option character returned for it.
    pub val: u8,
}

/// What [`Getopt::next_opt`] returns for one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An option (its short character) and its argument, if it takes one.
    Opt(u8, Option<Vec<u8>>),
    /// A usage error, with glibc's message (one line, newline included) for stderr.
    Error(Vec<u8>),
}

/// Walks the options of an argument vector, `getopt_long()`-style.
#[derive(Debug)]
pub struct Getopt<'a> {
    args: Vec<&'a [u8]>,
    short: &'static [u8],
    long: &'static [LongOpt],
    posixly_correct: bool,
    /// Index of the next argument to look at.
    index: usize,
    /// Position of the next option character inside a cluster of short options (`-abc`), 0
    /// when not inside one.
    cluster: usize,
    operands: Vec<&'a [u8]>,
    done: bool,
}

impl<'a> Getopt<'a> {
    /// Starts parsing `args` (`args[0]` is the program name used in messages) with the short
    /// options `short` (getopt syntax: a letter followed by `:` takes an argument) and the
    /// long options `long`. `posixly_correct` stops at the first operand, as glibc does when
    /// the `POSIXLY_CORRECT` environment variable is set.
    pub fn new(
        args: &'a [OsString],
        short: &'static [u8],
        long: &'static [LongOpt],
        posixly_correct: bool,
    ) -> Getopt<'a> {
        Getopt {
            args: args.iter().map(|a| a.as_bytes()).collect(),
            short,
            long,
            posixly_correct,
            index: 1,
            cluster: 0,
            operands: Vec::new(),
            done: false,
        }
    }

    /// The operands (non-option arguments), in order. Complete once [`Getopt::next_opt`]
    /// returned `None`.
    pub fn operands(&self) -> &[&'a [u8]] {
        &self.operands
    }

    /// The next option, or `None` when there are no more (then [`Getopt::operands`] are
    /// complete). After an error, parsing stops.
    pub fn next_opt(&mut self) -> Option<Parsed> {
        if self.done {
            return None;
        }
        if self.cluster > 0 {
            return self.short_option();
        }
        while let Some(&arg) = self.args.get(self.index) {
            if arg == b"--" {
                let rest = self.args.get(self.index + 1..).unwrap_or_default();
                self.operands.extend_from_slice(rest);
                break;
            }
            if let Some(name) = arg.strip_prefix(b"--") {
                self.index += 1;
                return self.long_option(name);
            }
            if arg.len() > 1 && arg.first() == Some(&b'-') {
                self.cluster = 1;
                return self.short_option();
            }
            if self.posixly_correct {
                let rest = self.args.get(self.index..).unwrap_or_default();
                self.operands.extend_from_slice(rest);
                break;
            }
            self.operands.push(arg);
            self.index += 1;
        }
        self.index = self.args.len();
        self.done = true;
        None
    }

    fn error(&mut self, parts: &[&[u8]]) -> Option<Parsed> {
        self.done = true;
        let mut message = self.args.first().copied().unwrap_or_default().to_vec();
        message.extend_from_slice(b": ");
        for part in parts {
            message.extend_from_slice(part);
        }
        message.push(b'\n');
        Some(Parsed::Error(message))
    }

    fn short_option(&mut self) -> Option<Parsed> {
        let arg = self.args.get(self.index).copied().unwrap_or_default();
        let pos = self.cluster;
        let Some(&c) = arg.get(pos) else {
            self.cluster = 0;
            self.index += 1;
            return self.next_opt();
        };
        let rest = arg.get(pos + 1..).unwrap_or_default();
        // Like getopt, step past the option character (and past the argument when the
        // character ends it) before reporting anything.
        if rest.is_empty() {
            self.cluster = 0;
            self.index += 1;
        } else {
            self.cluster = pos + 1;
        }
        let spec = match self.short.iter().position(|&s| s == c) {
            Some(spec) if c != b':' => spec,
            _ => return self.error(&[b"invalid option -- '", &[c], b"'"]),
        };
        if self.short.get(spec + 1) != Some(&b':') {
            return Some(Parsed::Opt(c, None));
        }
        if !rest.is_empty() {
            self.cluster = 0;
            self.index += 1;
            return Some(Parsed::Opt(c, Some(rest.to_vec())));
        }
        match self.args.get(self.index) {
            Some(&value) => {
                self.index += 1;
                Some(Parsed::Opt(c, Some(value.to_vec())))
            }
            None => self.error(&[b"option requires an argument -- '", &[c], b"'"]),
        }
    }

    /// `text` is the argument without its leading `--`: `name` or `name=value`.
    fn long_option(&mut self, text: &'a [u8]) -> Option<Parsed> {
        let name_end = text.iter().position(|&b| b == b'=').unwrap_or(text.len());
        let name = text.get(..name_end).unwrap_or_default();
        let value = text.get(name_end + 1..);
        let long = self.long;
        let found = match long.iter().find(|o| o.name.as_bytes() == name) {
            Some(exact) => exact,
            None => {
                let matches: Vec<&LongOpt> = long
                    .iter()
                    .filter(|o| o.name.as_bytes().starts_with(name))
                    .collect();
                match matches.as_slice() {
                    [] => return self.error(&[b"unrecognized option '--", text, b"'"]),
                    [first, rest @ ..]
                        if rest
                            .iter()
                            .all(|o| o.has_arg == first.has_arg && o.val == first.val) =>
                    {
                        *first
                    }
                    all => {
                        let mut parts: Vec<&[u8]> = vec![b"option '--", text];
                        parts.push(b"' is ambiguous; possibilities:");
                        for option in all {
                            parts.extend([&b" '--"[..], option.name.as_bytes(), b"'"]);
                        }
                        return self.error(&parts);
                    }
                }
            }
        };
        match (found.has_arg, value) {
            (HasArg::No, None) => Some(Parsed::Opt(found.val, None)),
            (HasArg::No, Some(_)) => self.error(&[
                b"option '--",
                found.name.as_bytes(),
                b"' doesn't allow an argument",
            ]),
            (HasArg::Required, Some(value)) => Some(Parsed::Opt(found.val, Some(value.to_vec()))),
            (HasArg::Required, None) => match self.args.get(self.index) {
                Some(&value) => {
                    self.index += 1;
                    Some(Parsed::Opt(found.val, Some(value.to_vec())))
                }
                None => self.error(&[
                    b"option '--",
                    found.name.as_bytes(),
                    b"' requires an argument",
                ]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &[LongOpt] = &[
        LongOpt {
            name: "filename",
            has_arg: HasArg::No,
            val: b'n',
        },
        LongOpt {
            name: "field",
            has_arg: HasArg::Required,
            val: b'F',
        },
        LongOpt {
            name: "author",
            has_arg: HasArg::No,
            val: b'a',
        },
    ];

    fn parse(args: &[&str], posix: bool) -> (Vec<Parsed>, Vec<String>) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut getopt = Getopt::new(&args, b"anF:0", LONG, posix);
        let mut opts = Vec::new();
        while let Some(p) = getopt.next_opt() {
            opts.push(p);
        }
        let operands = getopt
            .operands()
            .iter()
            .map(|o| String::from_utf8_lossy(o).into_owned())
            .collect();
        (opts, operands)
    }

    fn opt(c: u8, arg: Option<&str>) -> Parsed {
        Parsed::Opt(c, arg.map(|a| a.as_bytes().to_vec()))
    }

    fn err(message: &str) -> Vec<Parsed> {
        vec![Parsed::Error(format!("prog: {message}\n").into_bytes())]
    }

    #[test]
    fn clusters_arguments_and_permutation() {
        let (opts, operands) = parse(&["prog", "x", "-0an", "-Fauthor", "y", "-F", "-a"], false);
        assert_eq!(
            opts,
            [
                opt(b'0', None),
                opt(b'a', None),
                opt(b'n', None),
                opt(b'F', Some("author")),
                opt(b'F', Some("-a"))
            ]
        );
        assert_eq!(operands, ["x", "y"]);
        let (opts, operands) = parse(&["prog", "x", "-a", "--", "-n", "-"], false);
        assert_eq!(opts, [opt(b'a', None)]);
        assert_eq!(operands, ["x", "-n", "-"]);
        let (opts, operands) = parse(&["prog", "x", "-a"], true);
        assert!(opts.is_empty());
        assert_eq!(operands, ["x", "-a"]);
    }

    #[test]
    fn long_options_and_abbreviations() {
        let (opts, _) = parse(
            &["prog", "--auth", "--field=x", "--fie", "y", "--filename"],
            false,
        );
        assert_eq!(
            opts,
            [
                opt(b'a', None),
                opt(b'F', Some("x")),
                opt(b'F', Some("y")),
                opt(b'n', None)
            ]
        );
    }

    #[test]
    fn glibc_messages() {
        assert_eq!(
            parse(&["prog", "-x"], false).0,
            err("invalid option -- 'x'")
        );
        assert_eq!(
            parse(&["prog", "-F"], false).0,
            err("option requires an argument -- 'F'")
        );
        assert_eq!(
            parse(&["prog", "--foo=bar"], false).0,
            err("unrecognized option '--foo=bar'")
        );
        assert_eq!(
            parse(&["prog", "--f=x"], false).0,
            err("option '--f=x' is ambiguous; possibilities: '--filename' '--field'")
        );
        assert_eq!(
            parse(&["prog", "--au=3"], false).0,
            err("option '--author' doesn't allow an argument")
        );
        assert_eq!(
            parse(&["prog", "--fiel"], false).0,
            err("option '--field' requires an argument")
        );
        // Options before the bad one are still returned; nothing after it.
        let (opts, _) = parse(&["prog", "-a", "-x", "-n"], false);
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[0], opt(b'a', None));
    }
}
