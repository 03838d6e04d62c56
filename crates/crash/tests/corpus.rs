//! Runs the parser over syzkaller's Linux report corpus (`../shared/corpora/syzkaller-linux-reports`,
//! see its README): it must never panic. How many first-report titles match syzkaller's is printed
//! for information (`cargo test -p kmodlab-crash --test corpus -- --nocapture`); set
//! `KMODLAB_CORPUS_VERBOSE=1` to list every mismatch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kmodlab_crash::{parse_reports, Scanner};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("KMODLAB_SYZ_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpora/syzkaller-linux-reports"),
    }
}

/// One corpus file: its header fields and the console log.
struct Case {
    name: String,
    titles: Vec<String>,
    kind: String,
    corrupted: bool,
    log: String,
}

fn read_cases() -> Vec<Case> {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} not readable: {e}", dir.display()));
    let mut cases = Vec::new();
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let bytes = std::fs::read(&path).expect("corpus file");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, rest) = match text.strip_prefix('\n') {
            Some(rest) => ("", rest),
            None => text.split_once("\n\n").unwrap_or((text.as_str(), "")),
        };
        let log = match rest.find("\n\nREPORT:\n") {
            Some(i) => &rest[..i + 1],
            None => rest,
        };
        let mut case = Case {
            name,
            titles: Vec::new(),
            kind: String::new(),
            corrupted: false,
            log: log.to_owned(),
        };
        for line in head.lines() {
            if let Some(t) = line.strip_prefix("TITLE: ") {
                case.titles.insert(0, t.to_owned());
            } else if let Some(t) = line.strip_prefix("ALT: ") {
                case.titles.push(t.to_owned());
            } else if let Some(t) = line.strip_prefix("TYPE: ") {
                case.kind = t.to_owned();
            } else if line == "CORRUPTED: Y" {
                case.corrupted = true;
            }
        }
        cases.push(case);
    }
    cases.sort_by_key(|c| c.name.parse::<u64>().unwrap_or(0));
    cases
}

/// Titles of the kinds this crate detects.
fn in_scope(title: &str) -> bool {
    [
        "BUG: unable to handle kernel",
        "general protection fault",
        "divide error",
        "invalid opcode",
        "stack segment fault",
        "kernel BUG",
        "BUG: corrupted list",
        "BUG: bad usercopy",
        "WARNING in",
        "WARNING: ODEBUG bug",
        "WARNING: bad usercopy",
        "WARNING: kobject bug",
        "WARNING: proc registration bug",
        "WARNING: refcount bug",
        "WARNING: kmalloc bug",
        "WARNING: zero-size vmalloc",
        "kernel panic",
        "kernel stack overflow",
        "BUG: soft lockup",
        "INFO: task hung",
    ]
    .iter()
    .any(|p| title.starts_with(p))
}

#[test]
fn syzkaller_corpus_never_panics() {
    let verbose = std::env::var_os("KMODLAB_CORPUS_VERBOSE").is_some();
    let cases = read_cases();
    assert!(cases.len() > 700, "corpus has only {} files", cases.len());
    let mut with_title = 0;
    let mut matched = 0;
    let mut scope = 0;
    let mut scope_matched = 0;
    let mut corrupted_agree = 0;
    let mut negatives = 0;
    let mut false_positives = 0;
    let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for case in &cases {
        let reports = parse_reports(&case.log);
        for r in &reports {
            assert!(r.lines.0 <= r.lines.1, "{}: bad line range", case.name);
            assert!(!r.title.is_empty(), "{}: empty title", case.name);
        }
        let first = reports.first();
        let Some(expected) = case.titles.first() else {
            negatives += 1;
            if let Some(r) = first {
                false_positives += 1;
                if verbose {
                    println!("{}: negative case, got {:?}", case.name, r.title);
                }
            }
            continue;
        };
        with_title += 1;
        let ok = first.is_some_and(|r| case.titles.contains(&r.title));
        let entry = by_type.entry(case.kind.clone()).or_default();
        entry.0 += 1;
        if ok {
            matched += 1;
            entry.1 += 1;
            if first.is_some_and(|r| r.corrupted == case.corrupted) {
                corrupted_agree += 1;
            } else if verbose {
                let r = first.expect("matched");
                println!(
                    "{}: corrupted {} expected {} ({:?})",
                    case.name, r.corrupted, case.corrupted, r.corrupted_reason
                );
            }
        }
        if in_scope(expected) {
            scope += 1;
            if ok {
                scope_matched += 1;
            } else if verbose {
                println!(
                    "{}: expected {:?}, got {:?}",
                    case.name,
                    expected,
                    first.map(|r| &r.title)
                );
            }
        }
    }
    println!("syzkaller corpus: {} files", cases.len());
    println!("  first-report title matches: {matched}/{with_title}");
    println!("  of kinds this crate detects: {scope_matched}/{scope}");
    println!("  corrupted flag agrees on matched titles: {corrupted_agree}/{matched}");
    println!("  negative cases with a report: {false_positives}/{negatives}");
    for (kind, (n, ok)) in &by_type {
        println!("    {kind:<40} {ok:>4}/{n}");
    }
}

/// The scanner gives the same reports whatever the line endings, and whole-log parsing equals
/// line-by-line streaming.
#[test]
fn syzkaller_corpus_crlf_and_streaming_agree() {
    for case in read_cases() {
        let plain = parse_reports(&case.log);
        let crlf = parse_reports(&case.log.replace('\n', "\r\n"));
        let titles = |rs: &[kmodlab_crash::CrashReport]| {
            rs.iter()
                .map(|r| (r.title.clone(), r.kind, r.lines))
                .collect::<Vec<_>>()
        };
        assert_eq!(titles(&plain), titles(&crlf), "{}", case.name);
        let mut scanner = Scanner::new();
        let mut streamed = Vec::new();
        for line in case.log.lines() {
            streamed.extend(scanner.push_line(line));
        }
        streamed.extend(scanner.finish());
        assert_eq!(titles(&plain), titles(&streamed), "{}", case.name);
    }
}

/// Cut anywhere, a log still parses.
#[test]
fn syzkaller_corpus_truncated_logs_never_panic() {
    for case in read_cases() {
        let len = case.log.len();
        for k in 1..8 {
            let mut cut = len * k / 8;
            while !case.log.is_char_boundary(cut) {
                cut -= 1;
            }
            let _ = parse_reports(&case.log[..cut]);
            let _ = parse_reports(&case.log[cut..]);
        }
    }
}
