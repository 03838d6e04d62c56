//! TODO markers: where a solution becomes a skeleton.
//!
//! A marker is a comment line of its own whose text starts with `TODO n/k:` (or `TODO n:`):
//!
//! ```c
//!     /* TODO 2/1: print "Hello!" with pr_debug() */
//!     pr_debug("Hello!\n");
//! ```
//!
//! `n` is the TODO's number within the exercise (1, 2, ...; several markers may share one), `k`
//! how many lines right after the marker are the solution (0 when left out). The skeleton keeps
//! the marker, the student's instruction, and drops those `k` lines. The comment opens with `/*`
//! or `//` in C and Rust sources, with `#` in Kbuild and Makefiles.

use std::fmt;

/// One marker found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The TODO's number.
    pub number: u32,
    /// The instruction: the marker's text after `TODO n/k:`, the comment's closing `*/` removed.
    pub text: String,
    /// The 1-based line of the marker.
    pub line: usize,
    /// How many solution lines follow it.
    pub lines: usize,
}

/// A marker that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerError {
    /// The 1-based line of the marker.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MarkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses `TODO n/k: text` at the start of a comment's text; `None` when the line is no marker.
fn parse_marker(line: &str) -> Option<Result<(u32, usize, String), String>> {
    let t = line.trim_start();
    let body = t
        .strip_prefix("/*")
        .or_else(|| t.strip_prefix("//"))
        .or_else(|| t.strip_prefix('#'))?
        .trim_start();
    let rest = body.strip_prefix("TODO")?;
    if !rest.starts_with(' ') {
        return None;
    }
    let rest = rest.trim_start();
    let (head, text) = rest.split_once(':')?;
    if !head.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (n, k) = match head.split_once('/') {
        Some((n, k)) => (n, Some(k)),
        None => (head, None),
    };
    let number = match n.parse::<u32>() {
        Ok(n) if n > 0 => n,
        _ => return Some(Err(format!("TODO number {n:?} is not 1, 2, ..."))),
    };
    let lines = match k.map(str::parse::<usize>) {
        None => 0,
        Some(Ok(k)) => k,
        Some(Err(_)) => {
            return Some(Err(format!(
                "solution line count {:?} is not a number",
                k.unwrap_or_default()
            )))
        }
    };
    let text = text.trim();
    let text = text
        .strip_suffix("*/")
        .unwrap_or(text)
        .trim_end()
        .to_string();
    Some(Ok((number, lines, text)))
}

/// The markers of a file, in order; an error for a marker whose solution runs past the end of
/// the file or holds another marker.
pub fn markers(text: &str) -> Result<Vec<Marker>, MarkerError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(parsed) = parse_marker(lines[i]) else {
            i += 1;
            continue;
        };
        let (number, k, text) = parsed.map_err(|message| MarkerError {
            line: i + 1,
            message,
        })?;
        if i + k >= lines.len() {
            return Err(MarkerError {
                line: i + 1,
                message: format!(
                    "TODO {number} removes {k} lines, past the end of the file ({} lines)",
                    lines.len()
                ),
            });
        }
        if let Some(j) = (i + 1..=i + k).find(|&j| parse_marker(lines[j]).is_some()) {
            return Err(MarkerError {
                line: i + 1,
                message: format!(
                    "TODO {number}'s {k} solution lines hold another marker (line {})",
                    j + 1
                ),
            });
        }
        out.push(Marker {
            number,
            text,
            line: i + 1,
            lines: k,
        });
        i += k + 1;
    }
    Ok(out)
}

/// The skeleton of a file: every marker kept, the solution lines after it removed. The line
/// endings of the kept lines are kept.
pub fn skeleton(text: &str) -> Result<String, MarkerError> {
    let found = markers(text)?;
    let mut out = String::with_capacity(text.len());
    let mut drop_until = 0;
    let mut next = found.iter().peekable();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if n <= drop_until {
            continue;
        }
        if let Some(m) = next.next_if(|m| m.line == n) {
            drop_until = n + m.lines;
        }
        out.push_str(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "static int __init hello_init(void)\n{\n\
        \t/* TODO 1/1: print \"Hello!\" with pr_debug() */\n\
        \tpr_debug(\"Hello!\\n\");\n\
        \treturn 0;\n}\n";

    #[test]
    fn a_marker_keeps_its_instruction_and_drops_its_solution() {
        let m = markers(HELLO).unwrap();
        assert_eq!(
            m,
            vec![Marker {
                number: 1,
                text: "print \"Hello!\" with pr_debug()".into(),
                line: 3,
                lines: 1
            }]
        );
        assert_eq!(
            skeleton(HELLO).unwrap(),
            "static int __init hello_init(void)\n{\n\
             \t/* TODO 1/1: print \"Hello!\" with pr_debug() */\n\
             \treturn 0;\n}\n"
        );
    }

    #[test]
    fn kbuild_and_rust_comments_and_markers_without_a_count() {
        let kbuild = "# TODO 1/1: build supermodule from mod1.o and mod2.o\n\
                      supermodule-y = mod1.o mod2.o\nobj-m = supermodule.o\n";
        assert_eq!(
            skeleton(kbuild).unwrap(),
            "# TODO 1/1: build supermodule from mod1.o and mod2.o\nobj-m = supermodule.o\n"
        );
        let rust = "    // TODO 3/2: print the greeting\n    pr_info!(\"a\");\n    pr_info!(\"b\");\n    Ok(())\n";
        assert_eq!(
            skeleton(rust).unwrap(),
            "    // TODO 3/2: print the greeting\n    Ok(())\n"
        );
        let bare = "/* TODO 4: read the oops */\nint x;\n";
        assert_eq!(markers(bare).unwrap()[0].lines, 0);
        assert_eq!(skeleton(bare).unwrap(), bare);
    }

    #[test]
    fn lines_that_merely_mention_todo_are_no_markers() {
        for text in [
            "pr_info(\"TODO 1/1: x\");\n",
            "/* TODO: later */\n",
            "/* TODOs 1/1: x */\n",
            "// TODO one/1: x\n",
        ] {
            assert_eq!(markers(text).unwrap(), vec![], "{text}");
            assert_eq!(skeleton(text).unwrap(), text);
        }
    }

    #[test]
    fn bad_markers_are_errors_naming_the_line() {
        let past_end = "x\n/* TODO 1/3: y */\nz\n";
        let e = markers(past_end).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("past the end"), "{e}");
        let nested = "/* TODO 1/2: a */\n/* TODO 2/1: b */\nc\n";
        assert!(markers(nested)
            .unwrap_err()
            .message
            .contains("another marker"));
        assert!(markers("/* TODO 0/1: a */\nb\n").is_err());
        assert!(markers("/* TODO 1/x: a */\nb\n").is_err());
    }

    #[test]
    fn crlf_lines_and_a_last_line_without_newline_survive() {
        let text = "a\r\n// TODO 1/1: b\r\nsolution\r\nend";
        assert_eq!(skeleton(text).unwrap(), "a\r\n// TODO 1/1: b\r\nend");
    }
}
