//! util-linux's own dmesg test suite, run against `kmodlab dmesg` (`util-linux-dmesg` of the
//! reference corpora, see its README; skipped, and named as skipped, without it): every command
//! of every case, with the case's environment, through a link named `dmesg`; the concatenated
//! stdout (or stderr) must equal the expected file byte for byte.
//!
//! Two things of util-linux's test scripts are not in `cases.json` and are done here as the
//! scripts do them: `cid-kmsg-console-levels` and `cid-kmsg-facilities` echo a label line before
//! each command, and the `cid-kmsg-*` scripts (except `-json`) strip the padding of caller ids
//! (`sed 's/\[ *T/[T/g'`), whose width depends on the machine's pid_max. The expected files name
//! the program `test_dmesg` (util-linux's test build); the link here is called `dmesg`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A link named `dmesg` to the kmodlab binary, in a fresh directory.
fn dmesg_link() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dmesg-corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("dmesg");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kmodlab"), &link).unwrap();
    link
}

/// The label util-linux's script echoes before a command, if it echoes one.
fn label(test: &str, args: &[String], capture: &str) -> Option<String> {
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).cloned()
    };
    match test {
        "cid-kmsg-console-levels" => {
            let v = value("--level")?;
            Some(if capture == "stderr" {
                format!("Display console level: {v} (invalid)\n")
            } else {
                format!("Display console level: {v}\n")
            })
        }
        "cid-kmsg-facilities" => Some(format!("Display facility list: {}\n", value("--facility")?)),
        _ => None,
    }
}

/// `sed -e 's/\[ *T/[T/g' -e 's/\[ *C/[C/g'`.
fn strip_caller_padding(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        if after[spaces..].starts_with(['T', 'C']) {
            rest = &after[spaces..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn run_case(dmesg: &Path, dir: &Path, env: &[(String, String)], case: &Value) -> (String, String) {
    let test = case["test"].as_str().unwrap();
    let mut got = String::new();
    for cmd in case["commands"].as_array().unwrap() {
        let line = cmd["args"]
            .as_str()
            .unwrap()
            .replace("@INPUT/", &format!("{}/", dir.join("input").display()));
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let capture = cmd["capture"].as_str().unwrap();
        if let Some(l) = label(test, &args, capture) {
            got.push_str(&l);
        }
        let out = Command::new(dmesg)
            .args(&args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let bytes = if capture == "stderr" {
            out.stderr
        } else {
            out.stdout
        };
        got.push_str(&String::from_utf8_lossy(&bytes));
    }
    if test.starts_with("cid-kmsg-") && test != "cid-kmsg-json" {
        got = strip_caller_padding(&got);
    }
    let expected = std::fs::read_to_string(dir.join("expected").join(test)).unwrap();
    let expected = expected
        .lines()
        .map(|l| match l.strip_prefix("test_dmesg: ") {
            Some(rest) => format!("dmesg: {rest}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if expected.ends_with('\n') { "\n" } else { "" };
    (got, expected)
}

fn first_difference(got: &str, expected: &str) -> String {
    for (n, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        if g != e {
            return format!("line {}:\n  got      {g:?}\n  expected {e:?}", n + 1);
        }
    }
    format!(
        "lengths differ: got {} lines, expected {} lines",
        got.lines().count(),
        expected.lines().count()
    )
}

#[test]
fn every_util_linux_dmesg_case_gives_the_expected_output() {
    let Some(dir) = kmodlab_testkit::corpus("util-linux-dmesg") else {
        return;
    };
    let cases: Value = serde_json::from_slice(
        &std::fs::read(dir.join("cases.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("cases.json").display())),
    )
    .unwrap();
    let env: Vec<(String, String)> = cases["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let dmesg = dmesg_link();
    let all = cases["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut commands = 0;
    for case in all {
        commands += case["commands"].as_array().unwrap().len();
        let (got, expected) = run_case(&dmesg, &dir, &env, case);
        if got != expected {
            failures.push(format!(
                "{}: {}",
                case["test"].as_str().unwrap(),
                first_difference(&got, &expected)
            ));
        }
    }
    println!(
        "{} of {} util-linux dmesg cases ({} commands) give the expected output",
        all.len() - failures.len(),
        all.len(),
        commands
    );
    // Every expected file has its case: nothing in the corpus is skipped.
    let mut names: Vec<String> = all
        .iter()
        .map(|c| c["test"].as_str().unwrap().to_string())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("expected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    files.sort();
    assert_eq!(names, files, "cases.json and expected/ name the same tests");
    assert!(commands >= 90, "{commands} commands");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn caller_padding_is_stripped_as_sed_does() {
    assert_eq!(
        strip_caller_padding("[    1.0] [     T1] x [  C2] [ a]"),
        "[    1.0] [T1] x [C2] [ a]"
    );
}
