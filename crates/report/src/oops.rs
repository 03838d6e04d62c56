//! Crash reports for people: what `kmodlab oops` prints, and the shorter block in `kmodlab run`.

use kmodlab_crash::{CrashReport, Frame};
use std::io::{self, Write};

const INDENT: &str = "    ";

/// How much of a report to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Title, where, the source line with its context, notes (`kmodlab run`, `kmodlab test -v`).
    Brief,
    /// Also the decoded call trace, the disassembly and the taint (`kmodlab oops`).
    Full,
}

fn frame_text(f: &Frame) -> String {
    let mut s = f.function.clone();
    if let (Some(off), Some(size)) = (f.offset, f.size) {
        s.push_str(&format!("+{off:#x}/{size:#x}"));
    } else if let Some(off) = f.offset {
        s.push_str(&format!("+{off:#x}"));
    }
    if let Some(m) = &f.module {
        s.push_str(&format!(" [{m}]"));
    }
    s
}

/// The frame the report is titled by.
fn guilty(r: &CrashReport) -> Option<&Frame> {
    r.guilty_frame.and_then(|i| r.frames.get(i))
}

fn write_context(out: &mut dyn Write, r: &CrashReport) -> io::Result<()> {
    let Some(c) = &r.context else { return Ok(()) };
    let last = c.first_line as usize + c.lines.len().saturating_sub(1);
    let width = last.to_string().len();
    for (i, text) in c.lines.iter().enumerate() {
        let n = c.first_line as usize + i;
        let mark = if n == c.line as usize { ">" } else { " " };
        let text = text.trim_end();
        if text.is_empty() {
            writeln!(out, "{INDENT}{mark} {n:>width$} |")?;
        } else {
            writeln!(out, "{INDENT}{mark} {n:>width$} | {text}")?;
        }
    }
    Ok(())
}

fn write_trace(out: &mut dyn Write, r: &CrashReport) -> io::Result<()> {
    if r.frames.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  call trace (* the guilty frame, + the first frame in your module, ? a guess):"
    )?;
    let texts: Vec<String> = r
        .frames
        .iter()
        .map(|f| {
            let q = if f.reliable { "  " } else { "? " };
            format!("{q}{}", frame_text(f))
        })
        .collect();
    let width = texts.iter().map(|t| t.len()).max().unwrap_or(0).min(60);
    for (i, (f, text)) in r.frames.iter().zip(&texts).enumerate() {
        let mark = if Some(i) == r.guilty_frame {
            "*"
        } else if Some(i) == r.user_frame {
            "+"
        } else {
            " "
        };
        match &f.source {
            Some(s) => writeln!(out, "  {mark} {text:<width$}  {s}")?,
            None => writeln!(out, "  {mark} {text}")?,
        }
        for outer in &f.inlined_by {
            writeln!(out, "{INDENT}{:<width$}    inlined into {outer}", "")?;
        }
    }
    Ok(())
}

fn write_disassembly(out: &mut dyn Write, r: &CrashReport) -> io::Result<()> {
    let Some(d) = &r.disassembly else {
        return Ok(());
    };
    if d.instructions.is_empty() {
        return Ok(());
    }
    match (&d.function, d.origin.as_str()) {
        (Some(f), "module") => writeln!(out, "  code of {f}, from the module file:")?,
        _ => writeln!(
            out,
            "  code (the report's Code: bytes, offsets from the faulting one):"
        )?,
    }
    let width = d
        .instructions
        .iter()
        .map(|i| i.bytes.len())
        .max()
        .unwrap_or(0)
        .min(30);
    for i in &d.instructions {
        if let Some(s) = &i.source {
            writeln!(out, "{INDENT}{INDENT}{s}:")?;
        }
        let mark = if i.faulting { "=>" } else { "  " };
        let offset = if i.offset < 0 {
            format!("-{:x}", i.offset.unsigned_abs())
        } else {
            format!("{:x}", i.offset)
        };
        writeln!(
            out,
            "{INDENT}{mark} {offset:>5}:  {:<width$}  {}",
            i.bytes, i.text
        )?;
    }
    Ok(())
}

/// Writes one report. `Brief`: the title, where it happened (function, module, `file:line` with
/// a few lines of source), corruption and notes. `Full` adds the call trace with source lines and
/// inline chains, the disassembly with the faulting instruction marked, and the taint.
pub fn write_crash_report(out: &mut dyn Write, r: &CrashReport, detail: Detail) -> io::Result<()> {
    writeln!(out, "{}", r.title)?;
    let mut facts = vec![crate::kind_name(r.kind).to_string()];
    if let Some(cpu) = r.cpu {
        facts.push(format!("CPU {cpu}"));
    }
    match (r.pid, &r.comm) {
        (Some(p), Some(c)) => facts.push(format!("PID {p} ({c})")),
        (Some(p), None) => facts.push(format!("PID {p}")),
        _ => {}
    }
    if detail == Detail::Full {
        facts.push(format!("log lines {}-{}", r.lines.0 + 1, r.lines.1 + 1));
    }
    writeln!(out, "  kind: {}", facts.join(", "))?;
    match (guilty(r), &r.function) {
        (Some(f), _) => writeln!(out, "  where: {}", frame_text(f))?,
        (None, Some(f)) => writeln!(out, "  where: {f}")?,
        (None, None) => {}
    }
    if let Some(s) = &r.source {
        writeln!(out, "  source: {s}")?;
        write_context(out, r)?;
    }
    if let Some(u) = r.user_frame.filter(|u| Some(*u) != r.guilty_frame) {
        if let Some(f) = r.frames.get(u) {
            match &f.source {
                Some(s) => writeln!(out, "  in your module: {} at {s}", frame_text(f))?,
                None => writeln!(out, "  in your module: {}", frame_text(f))?,
            }
        }
    }
    for st in &r.stacks {
        // `Allocated by task 25` -> `allocated by task 25`, with the module's line.
        let mut label = st.label.clone();
        if let Some(first) = label.get(..1) {
            label.replace_range(..1, &first.to_lowercase());
        }
        match (&st.function, &st.source) {
            (Some(f), Some(s)) => writeln!(out, "  {label}: {f} at {s}")?,
            (Some(f), None) => writeln!(out, "  {label}: {f}")?,
            _ => {
                if let Some(f) = st.frames.iter().find(|f| f.module.is_some()) {
                    writeln!(out, "  {label}: {}", frame_text(f))?;
                }
            }
        }
    }
    if r.corrupted {
        match &r.corrupted_reason {
            Some(why) => writeln!(out, "  corrupted: {why}")?,
            None => writeln!(out, "  corrupted")?,
        }
    }
    if detail == Detail::Full {
        write_trace(out, r)?;
        write_disassembly(out, r)?;
        if !r.taint_flags.is_empty() {
            let flags: Vec<String> = r
                .taint_flags
                .iter()
                .map(|f| format!("{} ({})", f.letter, f.name))
                .collect();
            writeln!(out, "  tainted: {}", flags.join(", "))?;
        }
    }
    for note in &r.notes {
        writeln!(out, "  note: {note}")?;
    }
    Ok(())
}

/// Writes every report of a log, `Full` detail, a blank line between them; `no crash report
/// found` when there is none.
pub fn write_crash_reports(out: &mut dyn Write, reports: &[CrashReport]) -> io::Result<()> {
    if reports.is_empty() {
        return writeln!(out, "no crash report found");
    }
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        if reports.len() > 1 {
            write!(out, "[{}/{}] ", i + 1, reports.len())?;
        }
        write_crash_report(out, r, Detail::Full)?;
    }
    Ok(())
}
