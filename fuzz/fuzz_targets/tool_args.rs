//! Command lines (the input split at NUL bytes into arguments): `kmodlab_getopt::Getopt` with the
//! option tables of modprobe, modinfo, depmod, insmod, rmmod and dmesg (each tool's
//! `SHORT_OPTIONS` and `LONG_OPTIONS`) and a table with `+`, optional arguments and ambiguous
//! abbreviations, each with `POSIXLY_CORRECT` set and unset. What was parsed is written back as
//! a canonical command line, which must parse the same. Also modprobe's `MODPROBE_OPTIONS`
//! splitting (`kmodlab_kmod::modprobe::fuzz_options_from_env`), libkmod's `KMOD_LOG` reading
//! (`kmodlab_kmod::tool_log::fuzz_log_priority`, checked against the C library's `strtol`),
//! modprobe's `--wait` value (`kmodlab_kmod::modprobe::fuzz_wait_value`, against `strtoul`)
//! and dmesg's option values (`--level`, `--facility`, `--console-level`, `--since`).
#![no_main]

use kmodlab_dmesg::names::{parse_list, parse_name, Kind};
use kmodlab_getopt::{Getopt, HasArg, LongOpt};
use kmodlab_kmod::{depmod, insmod, modinfo, modprobe, rmmod};
use libfuzzer_sys::fuzz_target;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const fn opt(name: &'static str, has_arg: HasArg, val: u32) -> LongOpt {
    LongOpt::new(name, has_arg, val)
}
const NO: HasArg = HasArg::No;
const REQ: HasArg = HasArg::Required;
const OPT: HasArg = HasArg::Optional;

// dmesg's values for its long-only options `--since` and `--until`.
const DMESG_SINCE: u32 = 0x82;
const DMESG_UNTIL: u32 = 0x83;

/// Not a tool's: a leading `+`, optional arguments, abbreviations that are ambiguous (`--co`)
/// or not (`--al` names one value under two names).
const OTHER_SHORT: &str = "+ab:c::";
const OTHER: &[LongOpt] = &[
    opt("alpha", NO, 'a' as u32),
    opt("also", NO, 'a' as u32),
    opt("color", OPT, 'c' as u32),
    opt("colour", OPT, 'c' as u32),
    opt("config", REQ, 'b' as u32),
    opt("count", OPT, 300),
];

const TOOLS: [(&str, &str, &[LongOpt]); 7] = [
    ("modprobe", modprobe::SHORT_OPTIONS, modprobe::LONG_OPTIONS),
    ("modinfo", modinfo::SHORT_OPTIONS, modinfo::LONG_OPTIONS),
    ("depmod", depmod::SHORT_OPTIONS, depmod::LONG_OPTIONS),
    ("insmod", insmod::SHORT_OPTIONS, insmod::LONG_OPTIONS),
    ("rmmod", rmmod::SHORT_OPTIONS, rmmod::LONG_OPTIONS),
    ("dmesg", kmodlab_dmesg::SHORT_OPTIONS, kmodlab_dmesg::LONG_OPTIONS),
    ("other", OTHER_SHORT, OTHER),
];

/// An option as parsed: its value, its argument, its index in the long table.
type Parsed = (u32, Option<Vec<u8>>, Option<usize>);

/// What the short option string says of `c` (`None`: not an option).
fn short_spec(short: &str, c: u8) -> Option<HasArg> {
    let short = short.strip_prefix('+').unwrap_or(short).as_bytes();
    if c == b':' {
        return None;
    }
    let at = short.iter().position(|&s| s == c)?;
    Some(match (short.get(at + 1), short.get(at + 2)) {
        (Some(b':'), Some(b':')) => HasArg::Optional,
        (Some(b':'), _) => HasArg::Required,
        _ => HasArg::No,
    })
}

/// Whether `part` is a tail of one of the arguments (a slice of the command line as given).
fn is_tail_of_an_argument(argv: &[OsString], part: &OsStr) -> bool {
    let p = part.as_bytes();
    argv.iter().any(|a| {
        let a = a.as_bytes();
        let (start, end) = (a.as_ptr() as usize, a.as_ptr() as usize + a.len());
        let (ps, pe) = (p.as_ptr() as usize, p.as_ptr() as usize + p.len());
        start <= ps && pe == end
    })
}

/// Parses `argv` and checks what comes out; returns the options and operands when the parsing
/// ended without an error.
fn parse(
    argv: &[OsString],
    short: &str,
    long: &[LongOpt],
    posix: bool,
) -> Option<(Vec<Parsed>, Vec<Vec<u8>>)> {
    let mut getopt = Getopt::new(argv, short, long).posixly_correct(posix);
    let mut parsed = Vec::new();
    let mut failed = false;
    for item in getopt.by_ref() {
        assert!(!failed, "an item after an error");
        match item {
            Ok(o) => {
                let has_arg = match o.long_index {
                    Some(i) => {
                        assert_eq!(long[i].val, o.val);
                        long[i].has_arg
                    }
                    None => {
                        let c = u8::try_from(o.val).expect("a short option is a byte");
                        short_spec(short, c).expect("a short option of the table")
                    }
                };
                match has_arg {
                    HasArg::No => assert!(o.arg.is_none()),
                    HasArg::Required => assert!(o.arg.is_some()),
                    HasArg::Optional => {}
                }
                if let Some(arg) = o.arg {
                    assert!(is_tail_of_an_argument(argv, arg));
                    if o.long_index.is_none() && has_arg == HasArg::Optional {
                        // Only attached, so never empty.
                        assert!(!arg.is_empty());
                    }
                }
                parsed.push((o.val, o.arg.map(|a| a.as_bytes().to_vec()), o.long_index));
            }
            Err(e) => {
                let m = e.message();
                assert!(m.starts_with(argv[0].as_bytes()) && m.ends_with(b"\n"));
                failed = true;
            }
        }
    }
    assert!(getopt.next().is_none(), "the iterator is done");
    // The operands are whole arguments (not argv[0]), in order. (Empty arguments share a
    // dangling pointer: the search starts after the previous operand.)
    let mut last = 0;
    for operand in getopt.operands() {
        let at = argv[last + 1..]
            .iter()
            .position(|a| std::ptr::eq(a.as_os_str(), *operand))
            .expect("an operand is an argument, after the previous one");
        last += 1 + at;
    }
    if failed {
        return None;
    }
    let operands = getopt
        .operands()
        .iter()
        .map(|o| o.as_bytes().to_vec())
        .collect();
    Some((parsed, operands))
}

/// A command line that says `parsed` and `operands` in the plainest way: long options as
/// `--name[=ARG]`, short ones as `-c ARG` (or `-cARG` for an optional argument), then `--` and
/// the operands.
fn canonical(
    argv0: &OsStr,
    short: &str,
    long: &[LongOpt],
    parsed: &[Parsed],
    operands: &[Vec<u8>],
) -> Vec<OsString> {
    let mut argv = vec![argv0.to_os_string()];
    for (val, arg, long_index) in parsed {
        match long_index {
            Some(i) => {
                let mut a = format!("--{}", long[*i].name).into_bytes();
                if let Some(arg) = arg {
                    a.push(b'=');
                    a.extend_from_slice(arg);
                }
                argv.push(OsString::from_vec(a));
            }
            None => {
                let c = *val as u8;
                let mut a = vec![b'-', c];
                match short_spec(short, c) {
                    Some(HasArg::Required) => {
                        argv.push(OsString::from_vec(a));
                        argv.push(OsString::from_vec(arg.clone().expect("required")));
                        continue;
                    }
                    Some(HasArg::Optional) => {
                        a.extend_from_slice(arg.as_deref().unwrap_or_default())
                    }
                    _ => {}
                }
                argv.push(OsString::from_vec(a));
            }
        }
    }
    argv.push("--".into());
    argv.extend(operands.iter().map(|o| OsString::from_vec(o.clone())));
    argv
}

fn check_tool(
    argv: &[OsString],
    short: &str,
    long: &[LongOpt],
    posix: bool,
) -> Option<Vec<Parsed>> {
    let (parsed, operands) = parse(argv, short, long, posix)?;
    let again = canonical(&argv[0], short, long, &parsed, &operands);
    let (parsed2, operands2) =
        parse(&again, short, long, posix).expect("a canonical command line parses");
    assert_eq!(parsed2, parsed, "{again:?}");
    assert_eq!(operands2, operands, "{again:?}");
    Some(parsed)
}

/// `MODPROBE_OPTIONS` as modprobe splits it: nothing but spaces and quote characters is
/// dropped; the words, quoted back, split the same.
fn check_env_words(env: &[u8]) -> Vec<OsString> {
    let words = kmodlab_kmod::modprobe::fuzz_options_from_env(env);
    let separator = |b: &u8| matches!(b, b' ' | b'"' | b'\'');
    let kept: Vec<u8> = env.iter().copied().filter(|b| !separator(b)).collect();
    let got: Vec<u8> = words
        .iter()
        .flat_map(|w| w.as_bytes().iter().copied())
        .filter(|b| !separator(b))
        .collect();
    assert_eq!(got, kept);
    // Each word quoted at its start ends at its closing quote: no separator needed.
    let mut quoted = Vec::new();
    for w in &words {
        let w = w.as_bytes();
        let q = if !w.contains(&b'"') {
            b'"'
        } else if !w.contains(&b'\'') {
            b'\''
        } else {
            return words;
        };
        quoted.push(q);
        quoted.extend_from_slice(w);
        quoted.push(q);
    }
    assert_eq!(
        kmodlab_kmod::modprobe::fuzz_options_from_env(&quoted),
        words,
        "{quoted:?}"
    );
    words
}

/// libkmod's `log_priority` with the C library's `strtol`, for a value without NUL.
fn c_log_priority(value: &[u8]) -> Option<i32> {
    let c = CString::new(value).ok()?;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated; strtol sets `end` to a position in it.
    let prio = unsafe { libc::strtol(c.as_ptr(), &mut end, 10) };
    // SAFETY: `end` points into `c`, at its NUL at the latest.
    let next = unsafe { *end } as u8;
    if next == 0 || matches!(next, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return Some(prio as i32);
    }
    Some(if value.starts_with(b"err") {
        3
    } else if value.starts_with(b"info") {
        6
    } else if value.starts_with(b"debug") {
        7
    } else {
        0
    })
}

/// modprobe's `--wait` value, as kmod reads it: `strtoul(arg, &end, 0)`, refused when `arg` is
/// empty or not all used.
fn check_wait_value(arg: &[u8]) {
    let ours = kmodlab_kmod::modprobe::fuzz_wait_value(&String::from_utf8_lossy(arg));
    let Ok(c) = CString::new(arg) else { return };
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated; strtoul sets `end` to a position in it.
    let value = unsafe { libc::strtoul(c.as_ptr(), &mut end, 0) };
    // SAFETY: `end` points into `c`, at its NUL at the latest.
    let complete = unsafe { *end } == 0;
    let expected = (!arg.is_empty() && complete).then_some(value as u64);
    assert_eq!(ours, expected, "--wait {:?}", String::from_utf8_lossy(arg));
}

/// dmesg's reading of an option's argument.
fn check_dmesg_value(val: u32, arg: &[u8]) {
    let arg = String::from_utf8_lossy(arg);
    match val {
        v if v == 'l' as u32 || v == 'f' as u32 => {
            let (kind, n) = if v == 'l' as u32 {
                (Kind::Level, 8)
            } else {
                (Kind::Facility, 24)
            };
            let mut bits = vec![false; n];
            if parse_list(kind, &arg, &mut bits).is_ok() && !arg.is_empty() {
                assert!(bits.contains(&true), "{arg:?} selects nothing");
            }
        }
        v if v == 'n' as u32 => {
            if let Ok(level) = parse_name(Kind::Level, &arg, 0) {
                assert!((1..=8).contains(&level));
            }
        }
        DMESG_SINCE | DMESG_UNTIL => {
            const NOW: i64 = 1_700_000_000;
            if let Some(usec) = kmodlab_dmesg::clock::parse_timestamp(&arg, NOW) {
                // The same point in time as `@SECONDS.USEC` reads back the same.
                let again = format!("@{}.{:06}", usec / 1_000_000, usec % 1_000_000);
                assert_eq!(
                    kmodlab_dmesg::clock::parse_timestamp(&again, NOW),
                    Some(usec),
                    "{again}"
                );
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = data.split(|&b| b == 0).take(64).collect();
    for (tool, short, long) in TOOLS {
        let mut argv = vec![OsString::from(tool)];
        argv.extend(args.iter().map(|a| OsString::from_vec(a.to_vec())));
        for posix in [false, true] {
            let parsed = check_tool(&argv, short, long, posix);
            if tool == "modprobe" && !posix {
                for (val, arg, _) in parsed.iter().flatten() {
                    if let (Some(arg), true) = (arg, *val == 'w' as u32) {
                        check_wait_value(arg);
                    }
                }
            }
            if tool == "dmesg" && !posix {
                for (val, arg, _) in parsed.iter().flatten() {
                    if let Some(arg) = arg {
                        check_dmesg_value(*val, arg);
                    }
                }
            }
        }
    }

    // The first argument as MODPROBE_OPTIONS, before the others.
    let words = check_env_words(args[0]);
    let mut argv = vec![OsString::from("modprobe")];
    argv.extend(words);
    argv.extend(args[1..].iter().map(|a| OsString::from_vec(a.to_vec())));
    for posix in [false, true] {
        check_tool(&argv, modprobe::SHORT_OPTIONS, modprobe::LONG_OPTIONS, posix);
    }

    // Each argument as KMOD_LOG.
    for a in &args {
        let ours = kmodlab_kmod::tool_log::fuzz_log_priority(a);
        if let Some(c) = c_log_priority(a) {
            assert_eq!(ours, c, "KMOD_LOG={:?}", String::from_utf8_lossy(a));
        }
    }
});
