//! Why Kconfig left an option out: its `depends on` lines, read from the kernel's own Kconfig
//! file and evaluated against the final `.config`, so that the build can name the dependency
//! that failed (`depends on !KASAN || CC_IS_CLANG (KASAN=y, CC_IS_CLANG=n)`) rather than guess.

use crate::config::parse_config;
use std::collections::HashMap;

/// The `depends on` lines of `config SYMBOL` (or `menuconfig SYMBOL`) in `kconfig` that do not
/// hold for `config`, each with the values of the options it names. `None` when `kconfig` does
/// not define the symbol. A line that cannot be evaluated (a `$(...)` macro) is not reported.
pub fn unmet_dependencies(kconfig: &str, symbol: &str, config: &str) -> Option<Vec<String>> {
    let values: HashMap<String, String> = parse_config(config)
        .into_iter()
        .map(|o| (o.name.trim_start_matches("CONFIG_").to_string(), o.value))
        .collect();
    let deps = depends_lines(kconfig, symbol)?;
    Some(
        deps.into_iter()
            .filter(|d| eval(d, &values) == Some(0))
            .map(|d| {
                let named: Vec<String> = symbols(&d)
                    .into_iter()
                    .map(|s| {
                        let v = values.get(&s).map(String::as_str).unwrap_or("n");
                        format!("{s}={v}")
                    })
                    .collect();
                format!("depends on {d} ({})", named.join(", "))
            })
            .collect(),
    )
}

/// The `depends on` expressions of a symbol's entry, continuation lines joined.
fn depends_lines(kconfig: &str, symbol: &str) -> Option<Vec<String>> {
    let mut lines = kconfig.lines();
    lines.find(|l| {
        let t = l.trim_end();
        t == format!("config {symbol}") || t == format!("menuconfig {symbol}")
    })?;
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for l in lines {
        if let Some(mut p) = pending.take() {
            let t = l.trim();
            p.push(' ');
            p.push_str(t.trim_end_matches('\\').trim());
            if t.ends_with('\\') {
                pending = Some(p);
            } else {
                out.push(p);
            }
            continue;
        }
        // The entry ends at the next line that is not indented (the next entry or block).
        if !l.is_empty() && !l.starts_with([' ', '\t']) {
            break;
        }
        let Some(expr) = l.trim().strip_prefix("depends on ") else {
            continue;
        };
        let expr = expr.trim();
        match expr.strip_suffix('\\') {
            Some(head) => pending = Some(head.trim().to_string()),
            None => out.push(expr.to_string()),
        }
    }
    out.extend(pending);
    Some(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Not,
    And,
    Or,
    Open,
    Close,
    Cmp(&'static str),
    /// `$(...)`: a macro only Kconfig can expand.
    Macro,
}

fn tokens(expr: &str) -> Vec<Token> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &expr[i..];
        let two = rest.get(..2).unwrap_or("");
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'$' => {
                // Skip to the matching parenthesis.
                let mut depth = 0;
                let mut j = i + 1;
                while j < b.len() {
                    match b[j] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                out.push(Token::Macro);
                i = j + 1;
            }
            _ if two == "&&" => {
                out.push(Token::And);
                i += 2;
            }
            _ if two == "||" => {
                out.push(Token::Or);
                i += 2;
            }
            _ if ["!=", "<=", ">="].contains(&two) => {
                out.push(Token::Cmp(match two {
                    "!=" => "!=",
                    "<=" => "<=",
                    _ => ">=",
                }));
                i += 2;
            }
            b'!' => {
                out.push(Token::Not);
                i += 1;
            }
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'=' | b'<' | b'>' => {
                out.push(Token::Cmp(match b[i] {
                    b'=' => "=",
                    b'<' => "<",
                    _ => ">",
                }));
                i += 1;
            }
            b'"' => {
                let end = rest[1..].find('"').map_or(rest.len(), |e| e + 2);
                out.push(Token::Word(rest[..end].to_string()));
                i += end;
            }
            _ => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len())
                    .max(rest.chars().next().map_or(1, char::len_utf8));
                out.push(Token::Word(rest[..end].to_string()));
                i += end;
            }
        }
    }
    out
}

/// The option names an expression reads (words that are not numbers, strings or y/m/n).
fn symbols(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tokens(expr) {
        if let Token::Word(w) = t {
            let literal = w.starts_with('"')
                || w.bytes().all(|b| b.is_ascii_digit())
                || ["y", "m", "n"].contains(&w.as_str());
            if !literal && !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

/// Evaluates a Kconfig expression to a tristate (0 n, 1 m, 2 y); `None` when it cannot (a
/// macro, a syntax it does not know).
fn eval(expr: &str, values: &HashMap<String, String>) -> Option<u8> {
    let toks = tokens(expr);
    let mut p = Parser {
        toks: &toks,
        at: 0,
        values,
    };
    let v = p.or()?;
    (p.at == toks.len()).then_some(v)
}

struct Parser<'a> {
    toks: &'a [Token],
    at: usize,
    values: &'a HashMap<String, String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    fn or(&mut self) -> Option<u8> {
        let mut v = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            v = v.max(self.and()?);
        }
        Some(v)
    }

    fn and(&mut self) -> Option<u8> {
        let mut v = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            v = v.min(self.unary()?);
        }
        Some(v)
    }

    fn unary(&mut self) -> Option<u8> {
        match self.peek()?.clone() {
            Token::Not => {
                self.at += 1;
                Some(2 - self.unary()?)
            }
            Token::Open => {
                self.at += 1;
                let v = self.or()?;
                (self.peek() == Some(&Token::Close)).then_some(())?;
                self.at += 1;
                Some(v)
            }
            Token::Word(a) => {
                self.at += 1;
                if let Some(Token::Cmp(op)) = self.peek().cloned() {
                    self.at += 1;
                    let Some(Token::Word(b)) = self.peek().cloned() else {
                        return None;
                    };
                    self.at += 1;
                    return Some(if compare(&self.value(&a), op, &self.value(&b)) {
                        2
                    } else {
                        0
                    });
                }
                Some(match self.value(&a).as_str() {
                    "y" => 2,
                    "m" => 1,
                    _ => 0,
                })
            }
            _ => None,
        }
    }

    /// A word's value: an option's value (`n` when unset), else the word itself.
    fn value(&self, w: &str) -> String {
        if let Some(s) = w.strip_prefix('"') {
            return s.trim_end_matches('"').to_string();
        }
        if ["y", "m", "n"].contains(&w) || w.bytes().all(|b| b.is_ascii_digit()) {
            return w.to_string();
        }
        self.values
            .get(w)
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "n".into())
    }
}

fn compare(a: &str, op: &str, b: &str) -> bool {
    let num = |s: &str| match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok(),
        None => s.parse::<i64>().ok(),
    };
    let ord = match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.cmp(b),
    };
    use std::cmp::Ordering::*;
    match op {
        "=" => ord == Equal,
        "!=" => ord != Equal,
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        _ => ord != Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config RUST` of Linux 7.3's init/Kconfig, with a continuation line added.
    const KCONFIG: &str = "\
config RUST
\tbool \"Rust support\"
\tdepends on HAVE_RUST
\tdepends on RUST_IS_AVAILABLE
\tselect EXTENDED_MODVERSIONS if MODVERSIONS
\tdepends on !MODVERSIONS || GENDWARFKSYMS
\tdepends on !RANDSTRUCT
\tdepends on !DEBUG_INFO_BTF || (PAHOLE_HAS_LANG_EXCLUDE && !LTO)
\tdepends on !KASAN || CC_IS_CLANG
\tdepends on !KASAN_SW_TAGS || \\
\t\tRUSTC_VERSION >= 109600
\tdepends on $(success,true)
\thelp
\t  Enables Rust support in the kernel.

source \"rust/kernel/Kconfig.test\"

config OTHER
\tdepends on NEVER
";

    #[test]
    fn the_failed_dependency_is_named_with_its_values() {
        let config = "CONFIG_HAVE_RUST=y\nCONFIG_RUST_IS_AVAILABLE=y\nCONFIG_KASAN=y\n\
                      CONFIG_CC_IS_GCC=y\nCONFIG_RUSTC_VERSION=109600\n";
        assert_eq!(
            unmet_dependencies(KCONFIG, "RUST", config).unwrap(),
            vec!["depends on !KASAN || CC_IS_CLANG (KASAN=y, CC_IS_CLANG=n)"]
        );
        let clang = format!("{config}CONFIG_CC_IS_CLANG=y\n");
        assert!(unmet_dependencies(KCONFIG, "RUST", &clang)
            .unwrap()
            .is_empty());
        let old = "CONFIG_HAVE_RUST=y\nCONFIG_RUST_IS_AVAILABLE=y\nCONFIG_KASAN_SW_TAGS=y\n\
                   CONFIG_RUSTC_VERSION=108500\nCONFIG_RANDSTRUCT=y\n";
        assert_eq!(
            unmet_dependencies(KCONFIG, "RUST", old).unwrap(),
            vec![
                "depends on !RANDSTRUCT (RANDSTRUCT=y)",
                "depends on !KASAN_SW_TAGS || RUSTC_VERSION >= 109600 \
                 (KASAN_SW_TAGS=y, RUSTC_VERSION=108500)"
            ]
        );
        assert_eq!(unmet_dependencies(KCONFIG, "MISSING", old), None);
    }

    #[test]
    fn expressions_follow_kconfig_tristate_logic() {
        let v: HashMap<String, String> = [("A", "y"), ("M", "m"), ("N", "n"), ("V", "0x10")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = |s: &str| eval(s, &v);
        assert_eq!(e("A && M"), Some(1));
        assert_eq!(e("!M"), Some(1));
        assert_eq!(e("N || (A && !N)"), Some(2));
        assert_eq!(e("V >= 16 && V < 17"), Some(2));
        assert_eq!(e("A = y && M != y"), Some(2));
        assert_eq!(e("UNSET"), Some(0));
        assert_eq!(e("$(cc-option,-x)"), None, "a macro cannot be evaluated");
        assert_eq!(e("A &&"), None);
        assert_eq!(symbols("!A || (B && C >= 3) || y"), vec!["A", "B", "C"]);
    }
}
