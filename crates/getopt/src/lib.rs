//! Command-line parsing as glibc's `getopt_long` does it (glibc 2.36, which kmod 30 and
//! util-linux call), byte for byte.
//!
//! - Arguments are bytes: an option's argument and the operands are slices of the command line
//!   as it was given, never re-encoded, whatever bytes they hold.
//! - Options and operands may be mixed; the operands are collected in order (glibc permutes
//!   them to the end). When `POSIXLY_CORRECT` is set in the environment, or the short option
//!   string starts with `+`, the first operand ends the options instead.
//! - `--` ends the options; `-` alone is an operand.
//! - Short options cluster (`-abc`); a short option's argument is the rest of its argument
//!   (`-Fx`) or the next argument (`-F x`); an optional argument only the rest (`-Lx`).
//! - A long option may be abbreviated to any prefix that names one option, or several that
//!   take the same kind of argument and report the same value; its argument is `--name=value`
//!   or, when it is required, the next argument (an optional one only `--name=value`).
//! - Errors carry glibc's message, prefixed with `argv[0]` as given: `unrecognized option`,
//!   `is ambiguous; possibilities:` with the candidates, `requires an argument`, `doesn't allow
//!   an argument`, `invalid option`. Parsing stops at the first error, as every tool using this
//!   crate stops there.
//!
//! Not supported, since no tool here uses them: a leading `-` or `:` in the short option
//! string, `W;`, `getopt_long_only`, and long options that set a flag.
//!
//! ```
//! use kmodlab_getopt::{Getopt, HasArg, LongOpt};
//! use std::ffi::{OsStr, OsString};
//!
//! const LONG: &[LongOpt] = &[
//!     LongOpt::new("all", HasArg::No, 'a' as u32),
//!     LongOpt::new("basedir", HasArg::Required, 'b' as u32),
//! ];
//! let argv: Vec<OsString> = ["depmod", "6.1", "--base", "/tmp/b", "-a"]
//!     .map(OsString::from)
//!     .into();
//! let mut getopt = Getopt::new(&argv, "ab:", LONG).posixly_correct(false);
//! let mut basedir = None;
//! for opt in getopt.by_ref() {
//!     match opt {
//!         Ok(opt) if opt.val == 'b' as u32 => basedir = opt.arg,
//!         Ok(_) => {}
//!         Err(e) => panic!("{}", String::from_utf8_lossy(e.message())),
//!     }
//! }
//! assert_eq!(basedir, Some(OsStr::new("/tmp/b")));
//! assert_eq!(getopt.operands(), [OsStr::new("6.1")]);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    /// `no_argument`.
    No,
    /// `required_argument`: attached (`-xVALUE`, `--name=VALUE`) or the next argument.
    Required,
    /// `optional_argument`: only attached (`-xVALUE`, `--name=VALUE`).
    Optional,
}

/// One entry of a `struct option` table: `--name`, whether it takes an argument, and the value
/// reported for it (the short option character, or a private code for a long-only option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongOpt {
    /// The long name, without `--`.
    pub name: &'static str,
    /// Whether it takes an argument.
    pub has_arg: HasArg,
    /// The value reported when it is seen.
    pub val: u32,
}

impl LongOpt {
    /// A table entry.
    pub const fn new(name: &'static str, has_arg: HasArg, val: u32) -> LongOpt {
        LongOpt { name, has_arg, val }
    }
}

/// A table entry, [`LongOpt::new`] in short, for the tables every tool writes:
/// `long("verbose", HasArg::No, 'v' as u32)`.
pub const fn long(name: &'static str, has_arg: HasArg, val: u32) -> LongOpt {
    LongOpt::new(name, has_arg, val)
}

/// An option found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt<'a> {
    /// The short option character (as a number), or the `val` of the long option.
    pub val: u32,
    /// Its argument, as given.
    pub arg: Option<&'a OsStr>,
    /// Its index in the long option table when it was given in long form (what
    /// `getopt_long` stores through `longindex`).
    pub long_index: Option<usize>,
}

impl Opt<'_> {
    /// The argument's bytes; empty when there is none.
    pub fn arg_bytes(&self) -> &[u8] {
        self.arg.map(OsStr::as_bytes).unwrap_or_default()
    }
}

/// A usage error: glibc's message, which the tools print on standard error before exiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: Vec<u8>,
}

impl Error {
    /// The whole message: `argv[0]`, `: `, the text and a newline.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Prints the message on `err` (a tool's standard error), as the tools do before exiting
    /// with status 1: `let Ok(opt) = opt.map_err(|e| e.report(err)) else { return 1 };`.
    pub fn report(&self, err: &mut dyn std::io::Write) {
        let _ = err.write_all(&self.message);
    }
}

/// Walks the options of a command line in order, as repeated calls of `getopt_long` do: each
/// item is an option or the error that ends the parsing. Once the iterator has returned `None`,
/// [`Getopt::operands`] holds every operand.
#[derive(Clone, Debug)]
pub struct Getopt<'a> {
    argv: &'a [OsString],
    short: &'a [u8],
    long: &'a [LongOpt],
    /// A `+` starts the short option string.
    plus: bool,
    posixly_correct: bool,
    /// The next element of `argv` to look at.
    index: usize,
    /// The position of the next character in a cluster of short options (`-abc`) in
    /// `argv[index]`; 0 outside one.
    cluster: usize,
    operands: Vec<&'a OsStr>,
    done: bool,
}

impl<'a> Getopt<'a> {
    /// Starts parsing `argv` (`argv[0]` is the program name, which prefixes the messages) with
    /// the short options `short` (getopt syntax: a character, then `:` if it requires an
    /// argument or `::` if it takes an optional one; a leading `+` stops at the first operand)
    /// and the long options `long`. Reads `POSIXLY_CORRECT` from the environment, as glibc
    /// does on its first call.
    pub fn new(argv: &'a [OsString], short: &'a str, long: &'a [LongOpt]) -> Getopt<'a> {
        let (plus, short) = match short.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, short),
        };
        Getopt {
            argv,
            short: short.as_bytes(),
            long,
            plus,
            posixly_correct: std::env::var_os("POSIXLY_CORRECT").is_some(),
            index: 1,
            cluster: 0,
            operands: Vec::new(),
            done: argv.is_empty(),
        }
    }

    /// The same parser with `POSIXLY_CORRECT` taken as set (`true`) or unset, whatever the
    /// environment says.
    pub fn posixly_correct(mut self, set: bool) -> Getopt<'a> {
        self.posixly_correct = set;
        self
    }

    /// The operands (the arguments that are neither options nor their arguments, and all
    /// after `--`), in order. Complete once the iterator has returned `None`; after an error,
    /// only those before it.
    pub fn operands(&self) -> &[&'a OsStr] {
        &self.operands
    }

    /// The operands as text (bytes that are not UTF-8 become U+FFFD): for tools whose
    /// internals work on text.
    pub fn operands_text(&self) -> Vec<String> {
        self.operands
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The first operand ends the options.
    fn require_order(&self) -> bool {
        self.plus || self.posixly_correct
    }

    /// Takes `argv[from..]` as operands and ends the parsing.
    fn finish(&mut self, from: usize) {
        let argv = self.argv;
        self.operands.extend(
            argv.get(from..)
                .unwrap_or_default()
                .iter()
                .map(|a| a.as_os_str()),
        );
        self.index = argv.len();
        self.done = true;
    }

    /// Ends the parsing with the message `argv[0]: PARTS...\n`.
    fn error(&mut self, parts: &[&[u8]]) -> Result<Opt<'a>, Error> {
        self.done = true;
        let mut message = self.argv.first().map_or(&[][..], |a| a.as_bytes()).to_vec();
        message.extend_from_slice(b": ");
        for part in parts {
            message.extend_from_slice(part);
        }
        message.push(b'\n');
        Err(Error { message })
    }

    /// What the short option string says of `c`, or `None` when `c` is not an option.
    fn short_spec(&self, c: u8) -> Option<HasArg> {
        if c == b':' || c == b';' {
            return None;
        }
        let at = self.short.iter().position(|&s| s == c)?;
        let after = self.short.get(at + 1..).unwrap_or_default();
        Some(if after.starts_with(b"::") {
            HasArg::Optional
        } else if after.starts_with(b":") {
            HasArg::Required
        } else {
            HasArg::No
        })
    }

    /// The next character of the cluster in `argv[index]`, at `cluster`.
    fn short_option(&mut self) -> Result<Opt<'a>, Error> {
        let arg = self.argv[self.index].as_bytes();
        let c = arg[self.cluster];
        let rest = &arg[self.cluster + 1..];
        // As getopt does, step past the character, and past the element when it ends it.
        if rest.is_empty() {
            self.cluster = 0;
            self.index += 1;
        } else {
            self.cluster += 1;
        }
        let Some(has_arg) = self.short_spec(c) else {
            return self.error(&[b"invalid option -- '", &[c], b"'"]);
        };
        let mut opt = Opt {
            val: u32::from(c),
            arg: None,
            long_index: None,
        };
        if has_arg == HasArg::No {
            return Ok(opt);
        }
        if !rest.is_empty() {
            // The rest of the element is the argument.
            opt.arg = Some(OsStr::from_bytes(rest));
            self.cluster = 0;
            self.index += 1;
        } else if has_arg == HasArg::Required {
            match self.argv.get(self.index) {
                Some(next) => {
                    opt.arg = Some(next.as_os_str());
                    self.index += 1;
                }
                None => return self.error(&[b"option requires an argument -- '", &[c], b"'"]),
            }
        }
        Ok(opt)
    }

    /// `text` is the element without its leading `--`: `name` or `name=value`, where `name`
    /// may be an abbreviation. `index` is already past the element.
    fn long_option(&mut self, text: &'a [u8]) -> Result<Opt<'a>, Error> {
        let long = self.long;
        let name_end = text.iter().position(|&b| b == b'=').unwrap_or(text.len());
        let name = &text[..name_end];
        let value = text.get(name_end + 1..).map(OsStr::from_bytes);
        let index = match long.iter().position(|o| o.name.as_bytes() == name) {
            Some(exact) => exact,
            None => {
                // glibc's rule: the first option the prefix matches, ambiguous when a later
                // match differs from it; the candidates shown are the first and those.
                let mut first: Option<usize> = None;
                let mut candidates: Vec<usize> = Vec::new();
                for (i, o) in long.iter().enumerate() {
                    if !o.name.as_bytes().starts_with(name) {
                        continue;
                    }
                    match first {
                        None => first = Some(i),
                        Some(f) if long[f].has_arg != o.has_arg || long[f].val != o.val => {
                            if candidates.is_empty() {
                                candidates.push(f);
                            }
                            candidates.push(i);
                        }
                        Some(_) => {}
                    }
                }
                if !candidates.is_empty() {
                    let mut parts: Vec<&[u8]> =
                        vec![b"option '--", text, b"' is ambiguous; possibilities:"];
                    for &i in &candidates {
                        parts.extend([&b" '--"[..], long[i].name.as_bytes(), b"'"]);
                    }
                    return self.error(&parts);
                }
                match first {
                    Some(f) => f,
                    None => return self.error(&[b"unrecognized option '--", text, b"'"]),
                }
            }
        };
        let option = &long[index];
        let mut opt = Opt {
            val: option.val,
            arg: None,
            long_index: Some(index),
        };
        match (option.has_arg, value) {
            (HasArg::No, Some(_)) => {
                let name = option.name.as_bytes();
                return self.error(&[b"option '--", name, b"' doesn't allow an argument"]);
            }
            (HasArg::No, None) => {}
            (_, Some(value)) => opt.arg = Some(value),
            (HasArg::Optional, None) => {}
            (HasArg::Required, None) => match self.argv.get(self.index) {
                Some(next) => {
                    opt.arg = Some(next.as_os_str());
                    self.index += 1;
                }
                None => {
                    let name = option.name.as_bytes();
                    return self.error(&[b"option '--", name, b"' requires an argument"]);
                }
            },
        }
        Ok(opt)
    }
}

impl<'a> Iterator for Getopt<'a> {
    type Item = Result<Opt<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.cluster > 0 {
            return Some(self.short_option());
        }
        let argv = self.argv;
        while let Some(arg) = argv.get(self.index) {
            let bytes = arg.as_bytes();
            if bytes == b"--" {
                self.finish(self.index + 1);
                return None;
            }
            if let Some(text) = bytes.strip_prefix(b"--") {
                self.index += 1;
                return Some(self.long_option(text));
            }
            if bytes.len() > 1 && bytes[0] == b'-' {
                self.cluster = 1;
                return Some(self.short_option());
            }
            if self.require_order() {
                self.finish(self.index);
                return None;
            }
            self.operands.push(arg.as_os_str());
            self.index += 1;
        }
        self.done = true;
        None
    }
}

/// The name a tool was invoked as, as `program_invocation_short_name` has it: the last path
/// component of `argv[0]`.
pub fn short_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

#[cfg(test)]
mod tests;
