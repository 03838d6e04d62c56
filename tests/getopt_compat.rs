//! Option parsing against the real tools: kmodlab's module tools and dmesg are given odd command
//! lines side by side with kmod's (`/bin/kmod`, run as the tool) and the system's `dmesg`, and
//! standard output, standard error and the exit status must be identical byte for byte. Both
//! parse with glibc's `getopt_long` rules (kmodlab through `kmodlab-getopt`): `--`,
//! abbreviations and ambiguous ones, clusters, missing and unwanted arguments, optional
//! arguments, `POSIXLY_CORRECT`, `MODPROBE_OPTIONS`, non-UTF-8 bytes, and `argv[0]` in the
//! messages.
//!
//! The cases are chosen so that nothing is loaded, unloaded or written: module tools stop at a
//! usage error or run with `-n`, `-D` or `-R`, and depmod only ever fails before it writes.
//! The dmesg cases read a file and avoid what util-linux changed between 2.38 (Debian 12's)
//! and 2.42 (what kmodlab follows): `--kmsg-file`, the help text, some messages.
//!
//! A test skips (named in the suite's summary) when `/bin/kmod`, `dmesg` or an installed
//! kernel's module tree is missing.

mod util;
use util::*;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const KMOD: &str = "/bin/kmod";

/// One command line: the tool, its arguments (split at spaces; `\xNN` is a byte) and the
/// environment variables set for it.
struct Case {
    env: &'static [(&'static str, &'static str)],
    tool: &'static str,
    args: &'static str,
}

const fn case(tool: &'static str, args: &'static str) -> Case {
    Case {
        env: &[],
        tool,
        args,
    }
}

const POSIX: &[(&str, &str)] = &[("POSIXLY_CORRECT", "1")];

const fn posix(tool: &'static str, args: &'static str) -> Case {
    Case {
        env: POSIX,
        tool,
        args,
    }
}

/// `text` with each `\xNN` turned into the byte.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if bytes[i..].starts_with(b"\\x") => {
                out.push(b);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The arguments of `case`, with `{KEY}` replaced by each value of `vars`.
fn words(args: &str, vars: &[(&str, &str)]) -> Vec<OsString> {
    let mut args = args.to_string();
    for (key, value) in vars {
        args = args.replace(&format!("{{{key}}}"), value);
    }
    args.split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| OsString::from_vec(unescape(w)))
        .collect()
}

/// What one run printed and returned.
#[derive(PartialEq, Eq)]
struct Outcome {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let shown = |b: &[u8]| b.escape_ascii().to_string().replace("\\n", "\n    ");
        write!(
            f,
            "exit {:?}\n  stdout:\n    {}\n  stderr:\n    {}",
            self.status,
            shown(&self.stdout),
            shown(&self.stderr)
        )
    }
}

/// Runs `command` in `dir` with a plain environment: the C locale, none of the variables the
/// tools read unless `case` sets them.
fn outcome(mut command: Command, dir: &Path, env: &[(&str, &str)]) -> Outcome {
    command.current_dir(dir).env("LC_ALL", "C");
    for var in [
        "POSIXLY_CORRECT",
        "MODPROBE_OPTIONS",
        "KMOD_LOG",
        "DMESG_TEST_BOOTIME",
        "NO_COLOR",
        "TERM",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, OsStr::from_bytes(&unescape(value)));
    }
    let out = command.output().expect("run the tool");
    Outcome {
        status: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// The real tool: `/bin/kmod` with `argv[0]` the tool's name for the module tools, else the
/// program at `dmesg`.
fn theirs(argv0: &OsStr, tool: &str, args: &[OsString]) -> Command {
    let program = if tool == "dmesg" {
        which("dmesg")
    } else {
        PathBuf::from(KMOD)
    };
    let mut command = Command::new(program);
    command.arg0(argv0).args(args);
    command
}

/// kmodlab: `kmodlab TOOL ARGS` (then `argv[0]` is `TOOL`), or through `link`, a link named
/// after the tool.
fn ours(link: Option<&Path>, tool: &str, args: &[OsString]) -> Command {
    match link {
        Some(link) => {
            let mut command = Command::new(link);
            command.args(args);
            command
        }
        None => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_kmodlab"));
            command.arg(tool).args(args);
            command
        }
    }
}

fn which(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Runs every case on both sides (in `dir`, with `{KEY}` in the arguments replaced from `vars`)
/// and fails naming each one that differs.
fn compare(dir: &Path, cases: &[Case], vars: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for case in cases {
        let args = words(case.args, vars);
        let kmod = outcome(
            theirs(OsStr::new(case.tool), case.tool, &args),
            dir,
            case.env,
        );
        let mine = outcome(ours(None, case.tool, &args), dir, case.env);
        if kmod != mine {
            let env: String = case
                .env
                .iter()
                .map(|(k, v)| format!("{k}='{v}' "))
                .collect();
            failures.push(format!(
                "{env}{} {}\n--- real\n  {kmod}\n--- kmodlab\n  {mine}",
                case.tool, case.args
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} command lines differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Usage errors and what glibc does before the tool sees any option; none of these needs a
/// module tree.
#[test]
fn module_tools_parse_options_as_kmod() {
    if kmodlab_testkit::require(KMOD).is_none() {
        return;
    }
    let dir = scratch("getopt-kmod");
    let cases = [
        // Abbreviations: unique, ambiguous (with the value in the message), several names
        // for one option.
        case("modinfo", "--fi"),
        case("modinfo", "--fi=x"),
        case("modinfo", "--=x"),
        case("depmod", "--ver"),
        case("depmod", "--s=x"),
        case("depmod", "--ba"),
        case("modprobe", "--sh"),
        case("modprobe", "--re"),
        case("modprobe", "--remove-"),
        case("modprobe", "--i"),
        case("rmmod", "--ver"),
        case("rmmod", "--v"),
        case("insmod", "--h"),
        // Unknown options, missing and unwanted arguments.
        case("modinfo", "-x"),
        case("modinfo", "---x"),
        case("modinfo", "-0ax"),
        case("modinfo", "-F"),
        case("modinfo", "--field"),
        case("modinfo", "--author=1"),
        case("modinfo", "--author="),
        case("depmod", "-P"),
        case("depmod", "--show=1"),
        case("depmod", "-x"),
        case("modprobe", "-C"),
        case("modprobe", "--conf"),
        case("modprobe", "--show-depends=1"),
        case("modprobe", "-:"),
        case("insmod", "--x"),
        case("insmod", "-x"),
        case("rmmod", "-x"),
        case("rmmod", "-fvx"),
        // `--` ends the options; an option's argument may look like an option.
        case("modinfo", "-- -F"),
        case("modinfo", "-F -- nosuchmod"),
        case("depmod", "-- -h"),
        case("modprobe", "--"),
        case("insmod", "-- -x"),
        // The tool stops at the first option that ends the run or fails; what comes after
        // it is never parsed.
        case("modinfo", "-h -x"),
        case("modinfo", "-x -h"),
        case("depmod", "-h --nope"),
        case("depmod", "-u --quiet --ro --ma -x"),
        case("modprobe", "-h -x"),
        case("modprobe", "-w abc -x"),
        case("modprobe", "-w 1x"),
        case("insmod", "-h -x"),
        case("rmmod", "-h -x"),
        // Non-UTF-8 bytes are printed as they are.
        case("modinfo", r"--\xff"),
        case("modinfo", r"-\xff"),
        case("modinfo", r"-a\xc3\xa9"),
        case("modinfo", r"--fi\xff=\xfe"),
        case("modinfo", r"nosuch\xff"),
        case("depmod", r"--\xff"),
        case("depmod", r"-\xff"),
        case("depmod", r"--ver=\xff"),
        case("modprobe", r"--\xff"),
        case("modprobe", r"-n\xff"),
        case("insmod", r"--\xff"),
        case("rmmod", r"--\xff"),
        case("rmmod", r"-\xe9"),
        // POSIXLY_CORRECT: the first operand ends the options.
        posix("modinfo", "nosuchmod -F"),
        posix("modinfo", "nosuchmod --nope"),
        case("modinfo", "nosuchmod --nope"),
        posix("depmod", "6.1 -h"),
        posix("modprobe", "-n nosuchmod --nope"),
        case("modprobe", "-n nosuchmod --nope"),
        posix("insmod", "/nonexistent.ko -x"),
        case("insmod", "/nonexistent.ko -x"),
        posix("rmmod", "nosuchmod -x"),
        case("rmmod", "nosuchmod -x"),
        posix("modinfo", "-- -x"),
        // MODPROBE_OPTIONS comes before the command line's arguments, split as bytes.
        Case {
            env: &[("MODPROBE_OPTIONS", "-n --nope")],
            tool: "modprobe",
            args: "nosuchmod",
        },
        Case {
            env: &[("MODPROBE_OPTIONS", r"-\xff")],
            tool: "modprobe",
            args: "-n nosuchmod",
        },
        Case {
            env: &[("MODPROBE_OPTIONS", "-S")],
            tool: "modprobe",
            args: "-h",
        },
        Case {
            env: &[
                ("MODPROBE_OPTIONS", "-n nosuchmod"),
                ("POSIXLY_CORRECT", "1"),
            ],
            tool: "modprobe",
            args: "--nope",
        },
    ];
    compare(&dir, &cases, &[]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Options that parse, with the module tree of the newest installed kernel: the lookups and
/// dry runs show that each option reached the tool with its argument.
#[test]
fn module_tools_act_on_the_options_kmod_sees() {
    if kmodlab_testkit::require(KMOD).is_none() {
        return;
    }
    let Some(host) = kmodlab_testkit::host_kernel() else {
        return;
    };
    let dir = scratch("getopt-tree");
    let cases = [
        case("modinfo", "-k {REL} -F license 9p"),
        case("modinfo", "--set={REL} --fie license 9p"),
        case("modinfo", "-k{REL} -0Flicense 9p 9pnet"),
        case("modinfo", "9p -k {REL} -F license"),
        posix("modinfo", "-k {REL} 9p -F license"),
        case("modinfo", "-k {REL} -- -F"),
        case("modinfo", r"-k {REL} \xff"),
        case("modinfo", "-k {REL} -Fdepends -m 9p"),
        case("modprobe", "-n -v -S {REL} 9p"),
        case("modprobe", "-nvS{REL} 9p -q"),
        posix("modprobe", "-n -v -S {REL} 9p -q"),
        case("modprobe", "--show-d --set-v={REL} 9p"),
        case("modprobe", "-DS {REL} 9p"),
        case("modprobe", "-R --set-version {REL} fs-9p"),
        Case {
            env: &[("MODPROBE_OPTIONS", "-n -v")],
            tool: "modprobe",
            args: "-S {REL} 9p",
        },
    ];
    compare(&dir, &cases, &[("REL", &host.release)]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// dmesg on a file in the syslog format: options, abbreviations, an optional argument,
/// clusters, `--`, POSIXLY_CORRECT and usage errors.
#[test]
fn dmesg_parses_options_as_util_linux() {
    if kmodlab_testkit::require_program("dmesg").is_none() {
        return;
    }
    let dir = scratch("getopt-dmesg");
    let log = dir.join("kern.log");
    std::fs::write(&log, "<6>[    1.000000] hello\n<4>[    2.500000] world\n").unwrap();
    let cases = [
        case("dmesg", "-tF {LOG}"),
        case("dmesg", "--fil {LOG} -t"),
        case("dmesg", "--file={LOG} -xt"),
        case("dmesg", "-F {LOG} --lev warn -t"),
        case("dmesg", "-F {LOG} --level=warn"),
        case("dmesg", "-F {LOG} -L"),
        case("dmesg", "-F {LOG} --color"),
        case("dmesg", "-F {LOG} -Lnever -t"),
        case("dmesg", "-F {LOG} --color never"),
        case("dmesg", "-F {LOG} --time-format=notime"),
        case("dmesg", "-F {LOG} -- -t"),
        case("dmesg", "-F {LOG} x"),
        posix("dmesg", "-F {LOG} x -t"),
        posix("dmesg", "-F {LOG} x --nope"),
        case("dmesg", "-F {LOG} x --nope"),
        case("dmesg", "-F {LOG} -l"),
        case("dmesg", "-F {LOG} --notime=1"),
        case("dmesg", "--xx"),
        case("dmesg", "--t"),
        case("dmesg", "--fo"),
        case("dmesg", "--co"),
        case("dmesg", "--s"),
        case("dmesg", "--clear=1"),
        case("dmesg", "-F"),
        case("dmesg", "--file"),
        case("dmesg", "-x7"),
        case("dmesg", r"--\xff"),
        case("dmesg", r"-\xff"),
        case("dmesg", r"-tF {LOG} \xff"),
    ];
    compare(&dir, &cases, &[("LOG", log.to_str().unwrap())]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// glibc prefixes its messages with `argv[0]` as given: a path, with whatever bytes it has.
/// Each tool runs through a link named after it in a directory whose name is not UTF-8; the
/// real tool gets the same `argv[0]`.
#[test]
fn messages_begin_with_argv0_as_given() {
    let Some(_) = kmodlab_testkit::require(KMOD) else {
        return;
    };
    let Some(_) = kmodlab_testkit::require_program("dmesg") else {
        return;
    };
    let dir = scratch("getopt-argv0");
    let bin = dir.join(OsStr::from_bytes(b"bin\xff"));
    std::fs::create_dir_all(&bin).unwrap();
    let mut failures = Vec::new();
    for (tool, args) in [
        ("modinfo", "-x"),
        ("depmod", "--ver"),
        ("modprobe", "--nope"),
        ("insmod", "-F"),
        ("rmmod", "--force=1"),
        ("dmesg", "--xx"),
    ] {
        let link = bin.join(tool);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kmodlab"), &link).unwrap();
        let args = words(args, &[]);
        let real = outcome(theirs(link.as_os_str(), tool, &args), &dir, &[]);
        let mine = outcome(ours(Some(&link), tool, &args), &dir, &[]);
        if real != mine {
            failures.push(format!("{tool}\n--- real\n  {real}\n--- kmodlab\n  {mine}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unescape_and_words() {
    assert_eq!(unescape(r"-a\xc3\xa9"), b"-a\xc3\xa9");
    assert_eq!(unescape(r"\x4"), b"\\x4");
    assert_eq!(
        words("-k {REL}  x", &[("REL", "6.1")]),
        [OsString::from("-k"), "6.1".into(), "x".into()]
    );
}
