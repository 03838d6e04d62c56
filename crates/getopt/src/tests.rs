//! The parser against what glibc 2.36's `getopt_long` does with the tables of the tools that
//! use it (the expected messages are those kmod 30's and util-linux's tools print).

use super::*;
use std::os::unix::ffi::OsStringExt;

/// depmod's table and short options (kmod 30).
const DEPMOD_SHORT: &str = "aAb:C:E:F:euqrvnP:wmVh";
const DEPMOD: &[LongOpt] = &[
    LongOpt::new("all", HasArg::No, 'a' as u32),
    LongOpt::new("quick", HasArg::No, 'A' as u32),
    LongOpt::new("basedir", HasArg::Required, 'b' as u32),
    LongOpt::new("config", HasArg::Required, 'C' as u32),
    LongOpt::new("symvers", HasArg::Required, 'E' as u32),
    LongOpt::new("filesyms", HasArg::Required, 'F' as u32),
    LongOpt::new("errsyms", HasArg::No, 'e' as u32),
    LongOpt::new("unresolved-error", HasArg::No, 'u' as u32),
    LongOpt::new("quiet", HasArg::No, 'q' as u32),
    LongOpt::new("root", HasArg::No, 'r' as u32),
    LongOpt::new("verbose", HasArg::No, 'v' as u32),
    LongOpt::new("show", HasArg::No, 'n' as u32),
    LongOpt::new("dry-run", HasArg::No, 'n' as u32),
    LongOpt::new("symbol-prefix", HasArg::Required, 'P' as u32),
    LongOpt::new("warn", HasArg::No, 'w' as u32),
    LongOpt::new("map", HasArg::No, 'm' as u32),
    LongOpt::new("version", HasArg::No, 'V' as u32),
    LongOpt::new("help", HasArg::No, 'h' as u32),
];

/// A part of modprobe's table (kmod 30), in its order: names that share values.
const MODPROBE_SHORT: &str = "arw:RibfDcnC:d:S:sqvVh";
const MODPROBE: &[LongOpt] = &[
    LongOpt::new("all", HasArg::No, 'a' as u32),
    LongOpt::new("remove", HasArg::No, 'r' as u32),
    LongOpt::new("remove-dependencies", HasArg::No, 5),
    LongOpt::new("remove-holders", HasArg::No, 5),
    LongOpt::new("wait", HasArg::Required, 'w' as u32),
    LongOpt::new("resolve-alias", HasArg::No, 'R' as u32),
    LongOpt::new("ignore-install", HasArg::No, 'i' as u32),
    LongOpt::new("ignore-remove", HasArg::No, 'i' as u32),
    LongOpt::new("show-depends", HasArg::No, 'D' as u32),
    LongOpt::new("showconfig", HasArg::No, 'c' as u32),
    LongOpt::new("show-config", HasArg::No, 'c' as u32),
    LongOpt::new("dry-run", HasArg::No, 'n' as u32),
    LongOpt::new("show", HasArg::No, 'n' as u32),
    LongOpt::new("config", HasArg::Required, 'C' as u32),
    LongOpt::new("verbose", HasArg::No, 'v' as u32),
    LongOpt::new("version", HasArg::No, 'V' as u32),
];

/// A part of dmesg's table (util-linux): an optional argument.
const DMESG_SHORT: &str = "CcF:L::tx";
const DMESG: &[LongOpt] = &[
    LongOpt::new("clear", HasArg::No, 'C' as u32),
    LongOpt::new("color", HasArg::Optional, 'L' as u32),
    LongOpt::new("file", HasArg::Required, 'F' as u32),
    LongOpt::new("time-format", HasArg::Required, 256),
];

fn argv(args: &[&[u8]]) -> Vec<OsString> {
    args.iter()
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// One option as (value, argument, long index), or an error's message.
type Item = Result<(u32, Option<Vec<u8>>, Option<usize>), String>;

/// What one parse gave: the options up to the error, then the operands.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    operands: Vec<Vec<u8>>,
}

fn run(getopt: Getopt) -> Outcome {
    let mut getopt = getopt;
    let mut items = Vec::new();
    for item in getopt.by_ref() {
        items.push(match item {
            Ok(o) => Ok((o.val, o.arg.map(|a| a.as_bytes().to_vec()), o.long_index)),
            Err(e) => Err(String::from_utf8_lossy(e.message()).into_owned()),
        });
    }
    let operands = getopt
        .operands()
        .iter()
        .map(|o| o.as_bytes().to_vec())
        .collect();
    Outcome { items, operands }
}

fn parse(short: &str, long: &[LongOpt], args: &[&str], posix: bool) -> Outcome {
    let mut bytes: Vec<&[u8]> = vec![b"prog"];
    bytes.extend(args.iter().map(|a| a.as_bytes()));
    let argv = argv(&bytes);
    run(Getopt::new(&argv, short, long).posixly_correct(posix))
}

fn depmod(args: &[&str]) -> Outcome {
    parse(DEPMOD_SHORT, DEPMOD, args, false)
}

fn modprobe(args: &[&str]) -> Outcome {
    parse(MODPROBE_SHORT, MODPROBE, args, false)
}

fn short(c: char, arg: Option<&str>) -> Item {
    Ok((c as u32, arg.map(|a| a.as_bytes().to_vec()), None))
}

fn long(val: u32, arg: Option<&str>, index: usize) -> Item {
    Ok((val, arg.map(|a| a.as_bytes().to_vec()), Some(index)))
}

fn error(message: &str) -> Item {
    Err(format!("prog: {message}\n"))
}

fn operands(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|o| o.as_bytes().to_vec()).collect()
}

#[test]
fn operands_mix_with_options_and_keep_their_order() {
    let o = depmod(&["6.1", "-a", "x.ko", "-b", "/base", "y.ko"]);
    assert_eq!(o.items, [short('a', None), short('b', Some("/base"))]);
    assert_eq!(o.operands, operands(&["6.1", "x.ko", "y.ko"]));
    // `-` alone is an operand.
    let o = depmod(&["-", "-a"]);
    assert_eq!(o.items, [short('a', None)]);
    assert_eq!(o.operands, operands(&["-"]));
}

#[test]
fn double_dash_ends_the_options() {
    let o = depmod(&["x", "-a", "--", "-n", "--all", "--", "y"]);
    assert_eq!(o.items, [short('a', None)]);
    assert_eq!(o.operands, operands(&["x", "-n", "--all", "--", "y"]));
    // As the argument of an option it is just that argument.
    let o = depmod(&["-b", "--", "-n"]);
    assert_eq!(o.items, [short('b', Some("--")), short('n', None)]);
    let o = depmod(&["--basedir", "--", "x"]);
    assert_eq!(o.items, [long('b' as u32, Some("--"), 2)]);
    assert_eq!(o.operands, operands(&["x"]));
    // Nothing after it: no operands.
    assert_eq!(depmod(&["--"]).operands, operands(&[]));
}

#[test]
fn short_options_cluster() {
    let o = depmod(&["-anv", "-vbDIR", "-nP", "_", "-w"]);
    assert_eq!(
        o.items,
        [
            short('a', None),
            short('n', None),
            short('v', None),
            short('v', None),
            short('b', Some("DIR")),
            short('n', None),
            short('P', Some("_")),
            short('w', None),
        ]
    );
    // A required argument takes the next element even when it looks like an option.
    let o = depmod(&["-b", "-a"]);
    assert_eq!(o.items, [short('b', Some("-a"))]);
    // An invalid character in a cluster stops there; the options before it count.
    let o = depmod(&["-axn"]);
    assert_eq!(o.items, [short('a', None), error("invalid option -- 'x'")]);
}

#[test]
fn optional_arguments_only_attached() {
    let o = parse(
        DMESG_SHORT,
        DMESG,
        &[
            "--color",
            "x",
            "--color=always",
            "--col=",
            "-Lnever",
            "-L",
            "-tL",
            "-Lt",
        ],
        false,
    );
    assert_eq!(
        o.items,
        [
            long('L' as u32, None, 1),
            long('L' as u32, Some("always"), 1),
            long('L' as u32, Some(""), 1),
            short('L', Some("never")),
            short('L', None),
            short('t', None),
            short('L', None),
            short('L', Some("t")),
        ]
    );
    assert_eq!(o.operands, operands(&["x"]));
}

#[test]
fn long_options_and_their_arguments() {
    let o = depmod(&["--basedir=/a", "--basedir", "/b", "--basedir=", "--all"]);
    assert_eq!(
        o.items,
        [
            long('b' as u32, Some("/a"), 2),
            long('b' as u32, Some("/b"), 2),
            long('b' as u32, Some(""), 2),
            long('a' as u32, None, 0),
        ]
    );
    // The value may hold `=`.
    let o = depmod(&["--config=a=b"]);
    assert_eq!(o.items, [long('C' as u32, Some("a=b"), 3)]);
}

#[test]
fn abbreviations() {
    // A unique prefix.
    assert_eq!(
        depmod(&["--bas", "/x"]).items,
        [long('b' as u32, Some("/x"), 2)]
    );
    assert_eq!(depmod(&["--verb"]).items, [long('v' as u32, None, 10)]);
    assert_eq!(depmod(&["--sh"]).items, [long('n' as u32, None, 11)]);
    // `--ver` is verbose or version.
    assert_eq!(
        depmod(&["--ver"]).items,
        [error(
            "option '--ver' is ambiguous; possibilities: '--verbose' '--version'"
        )]
    );
    // The message shows the argument as given, value included.
    assert_eq!(
        depmod(&["--s=x"]).items,
        [error(
            "option '--s=x' is ambiguous; possibilities: '--symvers' '--show' '--symbol-prefix'"
        )]
    );
    // Several matches with the same value and argument are one option: the first is reported.
    assert_eq!(modprobe(&["--ignore"]).items, [long('i' as u32, None, 6)]);
    assert_eq!(modprobe(&["--remove-"]).items, [long(5, None, 2)]);
    // An exact name wins over the longer names it is a prefix of.
    assert_eq!(modprobe(&["--show"]).items, [long('n' as u32, None, 12)]);
    assert_eq!(modprobe(&["--remove"]).items, [long('r' as u32, None, 1)]);
    // The candidates: the first match, then each later one that differs from it (not from
    // each other), in table order.
    assert_eq!(
        modprobe(&["--sh"]).items,
        [error(
            "option '--sh' is ambiguous; possibilities: '--show-depends' '--showconfig' \
             '--show-config' '--show'"
        )]
    );
    let matching_first = [
        LongOpt::new("show", HasArg::No, 'n' as u32),
        LongOpt::new("shout", HasArg::No, 's' as u32),
        LongOpt::new("showing", HasArg::No, 'n' as u32),
    ];
    assert_eq!(
        parse("ns", &matching_first, &["--sho"], false).items,
        [error(
            "option '--sho' is ambiguous; possibilities: '--show' '--shout'"
        )]
    );
    // The same value with another kind of argument is another option.
    let kinds = [
        LongOpt::new("color", HasArg::No, 'L' as u32),
        LongOpt::new("colour", HasArg::Optional, 'L' as u32),
    ];
    assert_eq!(
        parse("L", &kinds, &["--colo"], false).items,
        [error(
            "option '--colo' is ambiguous; possibilities: '--color' '--colour'"
        )]
    );
    // An empty name is a prefix of every name.
    assert_eq!(
        parse(DMESG_SHORT, DMESG, &["--=x"], false).items,
        [error(
            "option '--=x' is ambiguous; possibilities: '--clear' '--color' '--file' \
             '--time-format'"
        )]
    );
}

#[test]
fn glibc_messages() {
    assert_eq!(depmod(&["-x"]).items, [error("invalid option -- 'x'")]);
    assert_eq!(depmod(&["-:"]).items, [error("invalid option -- ':'")]);
    assert_eq!(depmod(&["-;"]).items, [error("invalid option -- ';'")]);
    assert_eq!(
        depmod(&["-b"]).items,
        [error("option requires an argument -- 'b'")]
    );
    assert_eq!(
        depmod(&["-ab"]).items,
        [
            short('a', None),
            error("option requires an argument -- 'b'")
        ]
    );
    assert_eq!(
        depmod(&["--nope=1"]).items,
        [error("unrecognized option '--nope=1'")]
    );
    assert_eq!(
        depmod(&["---all"]).items,
        [error("unrecognized option '---all'")]
    );
    assert_eq!(
        depmod(&["--basedir"]).items,
        [error("option '--basedir' requires an argument")]
    );
    // The full name, not the abbreviation given.
    assert_eq!(
        depmod(&["--bas"]).items,
        [error("option '--basedir' requires an argument")]
    );
    assert_eq!(
        depmod(&["--al=1"]).items,
        [error("option '--all' doesn't allow an argument")]
    );
    assert_eq!(
        depmod(&["--all="]).items,
        [error("option '--all' doesn't allow an argument")]
    );
}

#[test]
fn an_error_ends_the_parsing() {
    let o = depmod(&["x", "-a", "--nope", "-n", "y"]);
    assert_eq!(
        o.items,
        [short('a', None), error("unrecognized option '--nope'")]
    );
    // Only the operands before the error were seen.
    assert_eq!(o.operands, operands(&["x"]));
}

#[test]
fn posixly_correct_stops_at_the_first_operand() {
    let args = ["-a", "6.1", "-n", "--", "x"];
    let o = parse(DEPMOD_SHORT, DEPMOD, &args, true);
    assert_eq!(o.items, [short('a', None)]);
    assert_eq!(o.operands, operands(&["6.1", "-n", "--", "x"]));
    // Without it the options after the operand count.
    let o = parse(DEPMOD_SHORT, DEPMOD, &args, false);
    assert_eq!(o.items, [short('a', None), short('n', None)]);
    assert_eq!(o.operands, operands(&["6.1", "x"]));
    // An error after the first operand is not seen.
    let o = parse(DEPMOD_SHORT, DEPMOD, &["x", "--nope"], true);
    assert_eq!(o.items, []);
    assert_eq!(o.operands, operands(&["x", "--nope"]));
    // `--` first is still skipped; an option's argument is not an operand.
    let o = parse(DEPMOD_SHORT, DEPMOD, &["-b", "dir", "--", "-a"], true);
    assert_eq!(o.items, [short('b', Some("dir"))]);
    assert_eq!(o.operands, operands(&["-a"]));
}

#[test]
fn a_leading_plus_is_posixly_correct() {
    let o = parse("+ab:", &[], &["-a", "x", "-b", "y"], false);
    assert_eq!(o.items, [short('a', None)]);
    assert_eq!(o.operands, operands(&["x", "-b", "y"]));
    // The `+` is not an option.
    let o = parse("+ab:", &[], &["-+"], false);
    assert_eq!(o.items, [error("invalid option -- '+'")]);
    let o = parse("+ab:", &[], &["-bx"], false);
    assert_eq!(o.items, [short('b', Some("x"))]);
}

#[test]
fn non_utf8_bytes_pass_through_unchanged() {
    let args = argv(&[
        b"/usr/sbin/prog\xfe",
        b"\xff.ko",
        b"-b\xc3",
        b"--config=\xe9t\xe9",
        b"-C",
        b"\x80",
        b"--",
        b"-\xff",
    ]);
    let o = run(Getopt::new(&args, DEPMOD_SHORT, DEPMOD).posixly_correct(false));
    assert_eq!(
        o.items,
        [
            Ok(('b' as u32, Some(b"\xc3".to_vec()), None)),
            Ok(('C' as u32, Some(b"\xe9t\xe9".to_vec()), Some(3))),
            Ok(('C' as u32, Some(b"\x80".to_vec()), None)),
        ]
    );
    assert_eq!(o.operands, [b"\xff.ko".to_vec(), b"-\xff".to_vec()]);

    // Messages hold the bytes as given, argv[0] included.
    let message = |args: &[&[u8]]| {
        let argv = argv(args);
        let mut getopt = Getopt::new(&argv, DEPMOD_SHORT, DEPMOD);
        let error = getopt.find_map(Result::err).expect("an error");
        error.message().to_vec()
    };
    assert_eq!(
        message(&[b"/sbin/dep\xff", b"-\xff"]),
        b"/sbin/dep\xff: invalid option -- '\xff'\n"
    );
    assert_eq!(
        message(&[b"depmod", b"-a\xc3\xa9"]),
        b"depmod: invalid option -- '\xc3'\n"
    );
    assert_eq!(
        message(&[b"depmod", b"--\xff=\xfe"]),
        b"depmod: unrecognized option '--\xff=\xfe'\n"
    );
    assert_eq!(
        message(&[b"depmod", b"--s\xff"]),
        b"depmod: unrecognized option '--s\xff'\n"
    );
    assert_eq!(
        message(&[b"depmod", b"--ver=\xff"]),
        b"depmod: option '--ver=\xff' is ambiguous; possibilities: '--verbose' '--version'\n"
    );
}

#[test]
fn empty_command_lines() {
    // No argv[0] at all: nothing to parse (glibc returns -1).
    let o = run(Getopt::new(&[], DEPMOD_SHORT, DEPMOD));
    assert_eq!(
        o,
        Outcome {
            items: vec![],
            operands: vec![]
        }
    );
    let o = depmod(&[]);
    assert_eq!(
        o,
        Outcome {
            items: vec![],
            operands: vec![]
        }
    );
    // Empty arguments are operands.
    let o = depmod(&["", "-a", ""]);
    assert_eq!(o.operands, operands(&["", ""]));
}

#[test]
fn the_iterator_is_done_after_an_error_or_the_end() {
    let argv = argv(&[b"prog", b"-x", b"-a"]);
    let mut getopt = Getopt::new(&argv, DEPMOD_SHORT, DEPMOD);
    assert!(matches!(getopt.next(), Some(Err(_))));
    assert_eq!(getopt.next(), None);
    assert_eq!(getopt.next(), None);
    let argv = self::argv(&[b"prog", b"x"]);
    let mut getopt = Getopt::new(&argv, DEPMOD_SHORT, DEPMOD);
    assert_eq!(getopt.next(), None);
    assert_eq!(getopt.next(), None);
    assert_eq!(getopt.operands(), [OsStr::new("x")]);
}

#[test]
fn arg_bytes_and_short_name() {
    let argv = argv(&[b"prog", b"-bdir", b"-a"]);
    let opts: Vec<Opt> = Getopt::new(&argv, DEPMOD_SHORT, DEPMOD)
        .map(|o| o.unwrap())
        .collect();
    assert_eq!(opts[0].arg_bytes(), b"dir");
    assert_eq!(opts[1].arg_bytes(), b"");
    assert_eq!(short_name("/sbin/modprobe"), "modprobe");
    assert_eq!(short_name("modprobe"), "modprobe");
}

#[test]
fn operands_as_text_replace_bytes_that_are_not_utf8() {
    use std::os::unix::ffi::OsStringExt;
    let args = [
        OsString::from("insmod"),
        OsString::from("a.ko"),
        OsString::from_vec(b"x=\xff".to_vec()),
    ];
    let mut g = Getopt::new(&args, "", &[]);
    while g.next().is_some() {}
    assert_eq!(g.operands_text(), ["a.ko", "x=\u{fffd}"]);
}
