//! Command-line parsing as glibc's `getopt_long` does it, which is what kmod's tools use: options
//! and operands may be mixed (operands are collected in order), `--` ends the options, a long
//! option may be abbreviated to any unambiguous prefix, and the error messages are glibc's, printed
//! with the name the tool was invoked as.

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    /// `no_argument`.
    No,
    /// `required_argument`.
    Required,
    /// `optional_argument`: only `--name=value` or `-xvalue` give it a value.
    Optional,
}

/// One entry of a `struct option` table: `--name`, whether it takes an argument, and the value
/// it reports (the short option character, or a private code for long-only options).
#[derive(Clone, Copy, Debug)]
pub struct LongOpt {
    /// The long name, without `--`.
    pub name: &'static str,
    /// Whether it takes an argument.
    pub has_arg: HasArg,
    /// The value reported when it is seen.
    pub val: u32,
}

/// What the parser found, in command-line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An option with its value (short character or long-only code) and its argument.
    Opt(u32, Option<String>),
    /// An unknown option or a missing argument: the message is already printed; the tools exit 1.
    Error,
}

/// The result of parsing a whole command line.
#[derive(Debug, Default)]
pub struct Args {
    /// Options, in order, up to and including the first error.
    pub opts: Vec<Parsed>,
    /// Operands, in order (everything that is not an option, plus all after `--`).
    pub operands: Vec<String>,
}

/// Parses `args` (without `argv[0]`) against the short option string `short` (getopt syntax: a
/// letter followed by `:` takes an argument) and the long options `long`. Error messages are
/// written to `err`, prefixed with `argv0` as glibc does. Parsing stops at the first error.
pub fn getopt_long(
    argv0: &str,
    args: &[String],
    short: &str,
    long: &[LongOpt],
    err: &mut dyn std::io::Write,
) -> Args {
    let mut out = Args::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let parsed = parse_long(argv0, body, args, &mut i, long, err);
            let stop = parsed == Parsed::Error;
            out.opts.push(parsed);
            if stop {
                break;
            }
            continue;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            out.operands.push(arg.clone());
            continue;
        }
        // A cluster of short options.
        let chars: Vec<char> = arg[1..].chars().collect();
        let mut k = 0;
        let mut failed = false;
        while k < chars.len() {
            let c = chars[k];
            k += 1;
            match short_spec(short, c) {
                None => {
                    let _ = writeln!(err, "{argv0}: invalid option -- '{c}'");
                    out.opts.push(Parsed::Error);
                    failed = true;
                    break;
                }
                Some(HasArg::No) => out.opts.push(Parsed::Opt(c as u32, None)),
                Some(HasArg::Optional) => {
                    let rest: String = chars[k..].iter().collect();
                    out.opts
                        .push(Parsed::Opt(c as u32, (!rest.is_empty()).then_some(rest)));
                    break;
                }
                Some(HasArg::Required) => {
                    let rest: String = chars[k..].iter().collect();
                    if !rest.is_empty() {
                        out.opts.push(Parsed::Opt(c as u32, Some(rest)));
                    } else if i < args.len() {
                        out.opts.push(Parsed::Opt(c as u32, Some(args[i].clone())));
                        i += 1;
                    } else {
                        let _ = writeln!(err, "{argv0}: option requires an argument -- '{c}'");
                        out.opts.push(Parsed::Error);
                        failed = true;
                    }
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    out
}

fn short_spec(short: &str, c: char) -> Option<HasArg> {
    if c == ':' {
        return None;
    }
    let pos = short.find(c)?;
    let after = &short[pos + c.len_utf8()..];
    Some(if after.starts_with("::") {
        HasArg::Optional
    } else if after.starts_with(':') {
        HasArg::Required
    } else {
        HasArg::No
    })
}

fn parse_long(
    argv0: &str,
    body: &str,
    args: &[String],
    i: &mut usize,
    long: &[LongOpt],
    err: &mut dyn std::io::Write,
) -> Parsed {
    let (name, inline) = match body.find('=') {
        Some(eq) => (&body[..eq], Some(body[eq + 1..].to_string())),
        None => (body, None),
    };
    let found = match long.iter().find(|o| o.name == name) {
        Some(exact) => exact,
        None => {
            let mut first: Option<usize> = None;
            let mut ambiguous: Vec<usize> = Vec::new();
            for (n, o) in long.iter().enumerate() {
                if !o.name.starts_with(name) {
                    continue;
                }
                match first {
                    None => first = Some(n),
                    Some(f) => {
                        let p = &long[f];
                        if p.has_arg != o.has_arg || p.val != o.val {
                            if ambiguous.is_empty() {
                                ambiguous.push(f);
                            }
                            ambiguous.push(n);
                        }
                    }
                }
            }
            if !ambiguous.is_empty() {
                let mut msg = format!("{argv0}: option '--{body}' is ambiguous; possibilities:");
                for n in ambiguous {
                    msg.push_str(&format!(" '--{}'", long[n].name));
                }
                let _ = writeln!(err, "{msg}");
                return Parsed::Error;
            }
            match first {
                Some(f) => &long[f],
                None => {
                    let _ = writeln!(err, "{argv0}: unrecognized option '--{body}'");
                    return Parsed::Error;
                }
            }
        }
    };
    match (found.has_arg, inline) {
        (HasArg::No, Some(_)) => {
            let _ = writeln!(
                err,
                "{argv0}: option '--{}' doesn't allow an argument",
                found.name
            );
            Parsed::Error
        }
        (HasArg::No, None) => Parsed::Opt(found.val, None),
        (HasArg::Optional, v) => Parsed::Opt(found.val, v),
        (HasArg::Required, Some(v)) => Parsed::Opt(found.val, Some(v)),
        (HasArg::Required, None) => {
            if *i < args.len() {
                let v = args[*i].clone();
                *i += 1;
                Parsed::Opt(found.val, Some(v))
            } else {
                let _ = writeln!(
                    err,
                    "{argv0}: option '--{}' requires an argument",
                    found.name
                );
                Parsed::Error
            }
        }
    }
}

/// The name a tool was invoked as, as `program_invocation_short_name` has it: the last path
/// component of `argv[0]`.
pub fn short_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &[LongOpt] = &[
        LongOpt {
            name: "show-depends",
            has_arg: HasArg::No,
            val: 'D' as u32,
        },
        LongOpt {
            name: "show-config",
            has_arg: HasArg::No,
            val: 'c' as u32,
        },
        LongOpt {
            name: "showconfig",
            has_arg: HasArg::No,
            val: 'c' as u32,
        },
        LongOpt {
            name: "config",
            has_arg: HasArg::Required,
            val: 'C' as u32,
        },
        LongOpt {
            name: "remove-dependencies",
            has_arg: HasArg::No,
            val: 5,
        },
        LongOpt {
            name: "remove-holders",
            has_arg: HasArg::No,
            val: 5,
        },
    ];

    fn parse(args: &[&str]) -> (Args, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut err = Vec::new();
        let parsed = getopt_long("modprobe", &args, "DcC:nv", LONG, &mut err);
        (parsed, String::from_utf8(err).unwrap())
    }

    #[test]
    fn options_and_operands_mix_like_gnu_getopt() {
        let (a, e) = parse(&[
            "9p",
            "-nv",
            "x=1",
            "--config=/tmp",
            "-C",
            "/etc",
            "--",
            "-v",
        ]);
        assert_eq!(e, "");
        assert_eq!(a.operands, ["9p", "x=1", "-v"]);
        assert_eq!(
            a.opts,
            [
                Parsed::Opt('n' as u32, None),
                Parsed::Opt('v' as u32, None),
                Parsed::Opt('C' as u32, Some("/tmp".into())),
                Parsed::Opt('C' as u32, Some("/etc".into())),
            ]
        );
    }

    #[test]
    fn abbreviations_and_ambiguity() {
        let (a, _) = parse(&["--show-d"]);
        assert_eq!(a.opts, [Parsed::Opt('D' as u32, None)]);
        // Same value: not ambiguous.
        let (a, _) = parse(&["--remove"]);
        assert_eq!(a.opts, [Parsed::Opt(5, None)]);
        let (a, e) = parse(&["--show"]);
        assert_eq!(a.opts, [Parsed::Error]);
        assert_eq!(
            e,
            "modprobe: option '--show' is ambiguous; possibilities: '--show-depends' '--show-config' '--showconfig'\n"
        );
    }

    #[test]
    fn optional_arguments_only_attached() {
        let long = [LongOpt {
            name: "color",
            has_arg: HasArg::Optional,
            val: 'L' as u32,
        }];
        let args: Vec<String> = ["--color", "x", "--color=always", "-Lnever", "-L"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = getopt_long("dmesg", &args, "L::", &long, &mut Vec::new());
        assert_eq!(a.operands, ["x"]);
        assert_eq!(
            a.opts,
            [
                Parsed::Opt('L' as u32, None),
                Parsed::Opt('L' as u32, Some("always".into())),
                Parsed::Opt('L' as u32, Some("never".into())),
                Parsed::Opt('L' as u32, None),
            ]
        );
    }

    #[test]
    fn glibc_error_messages() {
        assert_eq!(parse(&["-x"]).1, "modprobe: invalid option -- 'x'\n");
        assert_eq!(
            parse(&["-C"]).1,
            "modprobe: option requires an argument -- 'C'\n"
        );
        assert_eq!(
            parse(&["--foo=bar"]).1,
            "modprobe: unrecognized option '--foo=bar'\n"
        );
        assert_eq!(
            parse(&["--config"]).1,
            "modprobe: option '--config' requires an argument\n"
        );
        assert_eq!(
            parse(&["--show-depends=1"]).1,
            "modprobe: option '--show-depends' doesn't allow an argument\n"
        );
    }
}
