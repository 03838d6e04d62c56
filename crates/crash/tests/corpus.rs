//! Runs the parser over syzkaller's Linux report corpus (`syzkaller-linux-reports` of the
//! reference corpora, see its README; skipped, and named, without it). It must never panic
//! (whole, cut short, with CRLF line endings); the first report's title must be the file's TITLE or one of its ALTs for at least 80% of the titled
//! files, and at least 95% of the untitled (negative) files must yield no report. The figures
//! and a per-TYPE table are printed (`cargo test -p kmodlab-crash --test corpus -- --nocapture`);
//! set `KMODLAB_CORPUS_VERBOSE=1` to list every mismatch.

use std::collections::BTreeMap;

use kmodlab_crash::{parse_reports, Scanner};

/// One corpus file: its header fields and the console log.
struct Case {
    name: String,
    titles: Vec<String>,
    kind: String,
    corrupted: bool,
    log: String,
}

/// Every case of the corpus, or `None` after a skip when the corpus is not there.
fn read_cases() -> Option<Vec<Case>> {
    let dir = kmodlab_testkit::corpus("syzkaller-linux-reports")?;
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
    Some(cases)
}

/// Share of titled files whose first report must carry TITLE or an ALT.
const MIN_TITLE_SHARE: f64 = 0.80;
/// Share of untitled (negative) files that must yield no report.
const MIN_NEGATIVE_SHARE: f64 = 0.95;

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        100.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

#[test]
fn syzkaller_corpus_titles() {
    let verbose = std::env::var_os("KMODLAB_CORPUS_VERBOSE").is_some();
    let Some(cases) = read_cases() else {
        return;
    };
    assert!(cases.len() > 700, "corpus has only {} files", cases.len());
    let mut with_title = 0;
    let mut matched = 0;
    let mut corrupted_agree = 0;
    let mut negatives = 0;
    let mut false_positives = 0;
    let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for case in &cases {
        let reports = parse_reports(&case.log);
        for r in &reports {
            assert!(r.lines.0 <= r.lines.1, "{}: bad line range", case.name);
            assert!(!r.title.is_empty(), "{}: empty title", case.name);
            if let Some(g) = r.guilty_frame {
                assert!(
                    g < r.frames.len(),
                    "{}: guilty frame out of range",
                    case.name
                );
            }
            if let Some(u) = r.user_frame {
                assert!(u < r.frames.len(), "{}: user frame out of range", case.name);
            }
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
        } else if verbose {
            println!(
                "{}: [{}] expected {:?}, got {:?}",
                case.name,
                case.kind,
                expected,
                first.map(|r| &r.title)
            );
        }
    }
    let negatives_clean = negatives - false_positives;
    let title_share = percent(matched, with_title);
    let negative_share = percent(negatives_clean, negatives);
    println!("syzkaller corpus: {} files", cases.len());
    println!("  first-report title matches: {matched}/{with_title} ({title_share:.1}%)");
    println!("  corrupted flag agrees on matched titles: {corrupted_agree}/{matched}");
    println!(
        "  negative cases without a report: {negatives_clean}/{negatives} ({negative_share:.1}%)"
    );
    for (kind, (n, ok)) in &by_type {
        let kind = if kind.is_empty() { "(no TYPE)" } else { kind };
        println!("    {kind:<40} {ok:>4}/{n}");
    }
    assert!(
        title_share >= MIN_TITLE_SHARE * 100.0,
        "only {title_share:.1}% of titled files match (need {:.0}%)",
        MIN_TITLE_SHARE * 100.0
    );
    assert!(
        negative_share >= MIN_NEGATIVE_SHARE * 100.0,
        "only {negative_share:.1}% of negative files yield no report (need {:.0}%)",
        MIN_NEGATIVE_SHARE * 100.0
    );
}

/// The scanner gives the same reports whatever the line endings, and whole-log parsing equals
/// line-by-line streaming.
#[test]
fn syzkaller_corpus_crlf_and_streaming_agree() {
    for case in read_cases().unwrap_or_default() {
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
    for case in read_cases().unwrap_or_default() {
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
