//! Finding the guilty frame of a report by walking its lines in parts, the way syzkaller's
//! stack formats do: skip to a line of one kind (capturing a function from it or not), then read
//! a stack of frames up to the next stack start, then the next part. The frames captured are
//! filtered by the skip tables and handed to an extractor (first frame, or stall).

use crate::frame::{self, Rip};
use crate::guilty::{self, Guilty, Pat};
use crate::Frame;

/// One step of a walk over a report's lines.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Part {
    /// Skip to the first line this accepts; nothing is captured.
    Find(fn(&str) -> bool),
    /// Skip to the first line a frame can be captured from.
    Capture(fn(&str) -> Option<Frame>),
    /// Read frames up to the next line that starts a stack (or that the next part accepts).
    Stack,
}

/// How the guilty frame is chosen among the frames a walk kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extractor {
    /// The first one.
    First,
    /// The frame above the first frame that dispatches work ([`guilty::stall`]).
    Stall,
}

/// A walk: its parts, the parts to try when the first ones find no frame, extra frames to skip.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walk {
    pub parts: &'static [Part],
    pub parts2: &'static [Part],
    pub skip: &'static [Pat],
    pub extractor: Extractor,
}

impl Walk {
    /// A walk of these parts, no second try, no extra skips, first frame.
    pub const fn new(parts: &'static [Part]) -> Walk {
        Walk {
            parts,
            parts2: &[],
            skip: &[],
            extractor: Extractor::First,
        }
    }

    /// The same walk with extra frames to skip.
    pub const fn skip(self, skip: &'static [Pat]) -> Walk {
        Walk { skip, ..self }
    }

    /// The same walk with another extractor.
    pub const fn extractor(self, extractor: Extractor) -> Walk {
        Walk { extractor, ..self }
    }

    /// The same walk with parts to try when the first ones find nothing.
    pub const fn or(self, parts2: &'static [Part]) -> Walk {
        Walk { parts2, ..self }
    }
}

/// A guilty frame found by a walk.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    /// The frame.
    pub frame: Frame,
    /// Its name for the title (`smp_call_function` for stalls there, prefixes stripped).
    pub name: String,
}

/// What a walk found: a key frame for each stack part (the first one is the title's), and
/// whether every stack had one and no fault-injection frame was in the way.
#[derive(Clone, Debug, Default)]
pub(crate) struct Found {
    pub keys: Vec<Option<Key>>,
    pub ok: bool,
}

impl Found {
    /// The first key frame.
    pub fn first(&self) -> Option<&Key> {
        self.keys.first().and_then(Option::as_ref)
    }
}

/// Walks `lines` (the report from its header on, console prefixes removed).
pub(crate) fn walk(lines: &[&str], w: &Walk) -> Found {
    let found = walk_parts(lines, w.parts, w);
    if found.ok || w.parts2.is_empty() {
        return found;
    }
    walk_parts(lines, w.parts2, w)
}

fn walk_parts(lines: &[&str], parts: &[Part], w: &Walk) -> Found {
    let mut found = Found {
        keys: Vec::new(),
        ok: true,
    };
    let mut raw: Vec<Frame> = Vec::new();
    let mut rest = lines;
    let mut stacks = 0;
    let mut i = 0;
    loop {
        if i == parts.len() || (matches!(parts[i], Part::Stack) && stacks > 0) {
            let key = extract(&raw, w);
            if key.is_none() {
                found.ok = false;
            }
            found.keys.push(key);
            raw.clear();
        }
        if i == parts.len() {
            break;
        }
        match parts[i] {
            Part::Stack => {
                stacks += 1;
                let next = parts.get(i + 1).copied();
                let mut advanced = false;
                while let Some((line, tail)) = rest.split_first() {
                    rest = tail;
                    if is_fault_injection(line) {
                        found.ok = false;
                        break;
                    }
                    if is_stack_start(line) {
                        break;
                    }
                    match next {
                        Some(Part::Find(f)) if f(line) => {
                            advanced = true;
                            break;
                        }
                        Some(Part::Capture(f)) => {
                            if let Some(fr) = f(line) {
                                keep(&mut raw, fr, w);
                                advanced = true;
                                break;
                            }
                        }
                        _ => {}
                    }
                    if let Some(fr) = stack_frame(line) {
                        keep(&mut raw, fr, w);
                    }
                }
                if advanced {
                    i += 1;
                }
            }
            Part::Find(f) => {
                while let Some((line, tail)) = rest.split_first() {
                    rest = tail;
                    if is_fault_injection(line) {
                        found.ok = false;
                        break;
                    }
                    if f(line) {
                        break;
                    }
                }
            }
            Part::Capture(f) => {
                while let Some((line, tail)) = rest.split_first() {
                    rest = tail;
                    if is_fault_injection(line) {
                        found.ok = false;
                        break;
                    }
                    if let Some(fr) = f(line) {
                        keep(&mut raw, fr, w);
                        break;
                    }
                }
            }
        }
        i += 1;
    }
    found
}

fn keep(raw: &mut Vec<Frame>, f: Frame, w: &Walk) {
    if !guilty::is_skipped(&f, w.skip) {
        raw.push(f);
    }
}

fn extract(raw: &[Frame], w: &Walk) -> Option<Key> {
    let refs: Vec<&Frame> = raw.iter().collect();
    let g: Option<Guilty<'_>> = match w.extractor {
        Extractor::First => guilty::plain(&refs, w.skip),
        Extractor::Stall => guilty::stall(&refs, w.skip),
    };
    g.map(|g| Key {
        frame: g.frame.clone(),
        name: g.name,
    })
}

/// A frame of a stack: a reliable `f+0x1/0x2` line (guesses, `? f+0x1/0x2`, never count).
pub(crate) fn stack_frame(line: &str) -> Option<Frame> {
    frame::parse_frame(line).filter(|f| f.reliable)
}

/// Fault injection's own stack, mixed into a report (`should_fail+0x...`).
fn is_fault_injection(line: &str) -> bool {
    let t = skip_pcs(line.trim_start());
    [
        "should_fail+",
        "should_fail.",
        "should_failslab+",
        "should_failslab.",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// A line that starts a stack in a report: `Call Trace:`, KASAN's `Allocated by task N:` and
/// `Freed by task N:`, kmemleak's `backtrace:`, KMSAN's `Uninit was stored to memory at:`.
pub(crate) fn is_stack_start(line: &str) -> bool {
    let t = line.trim();
    if t.contains("Call Trace") || t.contains("Call trace") || t.contains("Backtrace:") {
        return true;
    }
    if t.contains("Allocated:") || t.contains("Freed:") {
        return true;
    }
    for p in ["Allocated by task ", "Freed by task "] {
        if let Some(i) = t.find(p) {
            let rest = &t[i + p.len()..];
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            if n > 0 && rest[n..].starts_with(':') {
                return true;
            }
        }
    }
    if t.contains("Uninit was stored to memory at") {
        return true;
    }
    // ` backtrace:` or ` backtrace (crc 1234abcd):`, but not `stack backtrace:`.
    t.match_indices(" backtrace").any(|(i, _)| {
        let rest = &t[i + " backtrace".len()..];
        let rest = match rest.strip_prefix(" (crc ") {
            Some(r) => r.trim_start_matches(|c: char| c.is_ascii_hexdigit()),
            None => rest,
        };
        let rest = rest.strip_prefix(')').unwrap_or(rest);
        rest.starts_with(':') && i > 0 && t.as_bytes()[i - 1] != b'k'
    }) || t.starts_with("backtrace:")
        || t.starts_with("backtrace (crc ")
}

/// `[<ffffffff81234567>]` and `[ffffffff81234567]` tokens at the start.
pub(crate) fn skip_pcs(mut s: &str) -> &str {
    for _ in 0..2 {
        let Some(inner) = s.strip_prefix('[') else {
            break;
        };
        let Some(end) = inner.find(']') else {
            break;
        };
        let pc = &inner[..end];
        let pc = pc.strip_prefix('<').unwrap_or(pc);
        let pc = pc.strip_suffix('>').unwrap_or(pc);
        let pc = pc.strip_prefix("0x").unwrap_or(pc);
        if pc.is_empty() || !pc.bytes().all(|b| b.is_ascii_hexdigit()) {
            break;
        }
        s = inner[end + 1..].trim_start();
    }
    s
}

/// A function name at the start (`[a-zA-Z0-9_]+` followed by `.` or `+`), as a frame (parsed
/// in full when the rest is `+0x1/0x2 [mod]`).
pub(crate) fn func_at_start(s: &str) -> Option<Frame> {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if n == 0 || !matches!(s.as_bytes().get(n), Some(b'.' | b'+')) {
        return None;
    }
    Some(frame::parse_frame(s).unwrap_or_else(|| frame::named(&s[..n])))
}

/// `... at: [<ffffffff81234567>] f+0x1/0x2` (lockdep): the function after `at: `.
pub(crate) fn at_func(line: &str) -> Option<Frame> {
    line.match_indices("at:")
        .find_map(|(i, _)| func_at_start(skip_pcs(line[i + 3..].trim_start())))
}

/// `at: ` directly followed by the function (no address).
pub(crate) fn at_func_no_pc(line: &str) -> Option<Frame> {
    line.match_indices("at: ")
        .find_map(|(i, _)| func_at_start(&line[i + 4..]))
}

/// `[<ffffffff81234567>] f+0x1/0x2` anywhere in the line.
pub(crate) fn pc_func(line: &str) -> Option<Frame> {
    line.match_indices('[').find_map(|(i, _)| {
        let rest = &line[i..];
        let after = skip_pcs(rest);
        (after.len() < rest.len()).then(|| func_at_start(after))?
    })
}

/// The function of a kernel `RIP:` line (or `pc : f+0x1/0x2`, `PC is at f+0x1/0x2`).
pub(crate) fn rip_func(line: &str) -> Option<Frame> {
    match frame::parse_rip(line) {
        Some(Rip::Kernel(Some(f))) => Some(Frame { rip: true, ..f }),
        _ => {
            let t = line.trim_start();
            let rest = t
                .strip_prefix("pc : ")
                .or_else(|| t.strip_prefix("PC is at "))?;
            func_at_start(skip_pcs(rest.trim_start())).map(|f| Frame { rip: true, ..f })
        }
    }
}

/// `Call Trace:` / `Call trace:` / `Backtrace:`.
pub(crate) fn is_call_trace(line: &str) -> bool {
    line.contains("Call Trace:") || line.contains("Call trace:") || line.contains("Backtrace:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL_TRACE: &[Part] = &[Part::Find(is_call_trace), Part::Stack];

    #[test]
    fn walks() {
        let lines = [
            "BUG: x",
            " foo+0x1/0x2",
            "Call Trace:",
            " dump_stack+0x1/0x2",
            " ? guess+0x1/0x2",
            " bar.isra.0+0x1/0x2",
            " baz+0x1/0x2",
        ];
        let f = walk(&lines, &Walk::new(CALL_TRACE));
        assert!(f.ok);
        assert_eq!(f.first().unwrap().name, "bar");
        let f = walk(&lines[..4], &Walk::new(CALL_TRACE));
        assert!(!f.ok);
        assert!(f.first().is_none());
    }

    #[test]
    fn captures() {
        assert_eq!(
            at_func(" (&mm->mmap_sem){++++}, at: [<ffffffff81234>] __might_fault+0xd4/0x1b0")
                .unwrap()
                .function,
            "__might_fault"
        );
        assert_eq!(
            at_func("ffff8880(&x){+.+.}-{3:3}, at: do_thing.isra.1+0x1/0x2")
                .unwrap()
                .function,
            "do_thing.isra.1"
        );
        assert!(at_func(" at: [<ffffffff81234>] pipe_lock_nested fs/pipe.c:67 [inline]").is_none());
        assert_eq!(
            pc_func("[<ffffffff81234>] foo+0x1/0x2").unwrap().function,
            "foo"
        );
        assert_eq!(rip_func("pc : bar+0x1/0x2").unwrap().function, "bar");
        assert!(is_stack_start("Allocated by task 123:"));
        assert!(is_stack_start("  backtrace (crc 5a1b2c3d):"));
        assert!(is_stack_start("  backtrace:"));
        assert!(!is_stack_start("stack backtrace:"));
        assert!(is_fault_injection(" should_failslab+0x5/0x10"));
    }
}
