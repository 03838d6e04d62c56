//! Crash analysis: find the reports in a log and enrich them with what the module files and a
//! vmlinux tell: source lines of every frame, the guilty line with its context, a disassembly of
//! the faulting code. `kmodlab oops` and the lab loop's verdicts both come through here.

use crate::LabError;
use kmodlab_crash::{CrashReport, DisasmLine, Disassembly, SourceContext};
use kmodlab_symbolize::{Instruction, Symbolizer};
use std::path::{Path, PathBuf};

/// Lines of source shown before and after the guilty line.
const CONTEXT_LINES: u32 = 3;

/// Instructions shown before and after the faulting one when a function is disassembled from its
/// module file (all of it when it is short).
const DISASM_AROUND: usize = 12;

/// Where debug information comes from.
#[derive(Clone, Debug, Default)]
pub struct AnalyzeOptions {
    /// Directories searched (recursively) for module files.
    pub module_dirs: Vec<PathBuf>,
    /// Module files.
    pub module_files: Vec<PathBuf>,
    /// A vmlinux with debug info, for kernel frames.
    pub vmlinux: Option<PathBuf>,
}

/// Every crash report in `log`, symbolized and disassembled as far as `options` allow.
///
/// A missing or unreadable module directory or vmlinux is an input error; a module without
/// debug info, a stale module build or a frame that cannot be located becomes a note on the
/// report, never an error.
pub fn analyze_log(log: &str, options: &AnalyzeOptions) -> Result<Vec<CrashReport>, LabError> {
    let symbolizer = symbolizer(options)?;
    let mut reports = kmodlab_crash::parse_reports(log);
    enrich(&mut reports, &symbolizer, &options.module_dirs);
    Ok(reports)
}

/// A symbolizer loaded with what `options` name.
pub fn symbolizer(options: &AnalyzeOptions) -> Result<Symbolizer, LabError> {
    let mut s = Symbolizer::new();
    for dir in &options.module_dirs {
        if !dir.is_dir() {
            return Err(LabError::Input(format!(
                "{}: not a directory (--module-dir wants the directory holding the .ko files)",
                dir.display()
            )));
        }
        s.add_module_dir(dir)
            .map_err(|e| LabError::Input(format!("{}: {e}", dir.display())))?;
    }
    for file in &options.module_files {
        s.add_module_file(file)
            .map_err(|e| LabError::Input(format!("{}: {e}", file.display())))?;
    }
    if let Some(v) = &options.vmlinux {
        s.set_vmlinux(v)
            .map_err(|e| LabError::Input(format!("{}: {e}", v.display())))?;
    }
    Ok(s)
}

/// Fills in source lines, notes, the guilty line's context and the disassembly of each report.
/// `source_dirs` are where relative source paths are looked up for the context lines.
pub fn enrich(reports: &mut [CrashReport], symbolizer: &Symbolizer, source_dirs: &[PathBuf]) {
    for r in reports.iter_mut() {
        let notes = symbolizer.symbolize(r);
        r.notes.extend(notes);
        // Sources sit next to the module file in a Kbuild tree, wherever --module-dir pointed.
        let mut dirs = source_dirs.to_vec();
        if let Some(file) = r.module.as_deref().and_then(|m| symbolizer.file(Some(m))) {
            dirs.extend(file.path().parent().map(Path::to_path_buf));
        }
        r.context = r.source.as_deref().and_then(|s| source_context(s, &dirs));
        r.disassembly = disassemble(r, symbolizer);
    }
}

/// `file:line` split at its last colon.
fn split_source(source: &str) -> Option<(&str, u32)> {
    let (file, line) = source.rsplit_once(':')?;
    Some((file, line.parse().ok()?))
}

/// The lines around `file:line`, the file found under one of `dirs` (the module's source
/// directories). The name comes from the kernel log, which a broken or hostile module writes:
/// whatever it says (an absolute path, `..`, a link), only a file that really lies inside one of
/// `dirs` is read.
fn source_context(source: &str, dirs: &[PathBuf]) -> Option<SourceContext> {
    let (file, line) = split_source(source)?;
    let path = Path::new(file);
    let found = dirs.iter().find_map(|d| inside(d, path))?;
    let text = std::fs::read(&found).ok()?;
    let text = String::from_utf8_lossy(&text);
    let first = line.saturating_sub(CONTEXT_LINES).max(1);
    let lines: Vec<String> = text
        .lines()
        .skip(first as usize - 1)
        .take((line - first + CONTEXT_LINES + 1) as usize)
        .map(|l| l.replace('\t', "    "))
        .collect();
    if lines.len() < (line - first + 1) as usize {
        return None;
    }
    Some(SourceContext {
        source: source.to_string(),
        path: found.display().to_string(),
        first_line: first,
        line,
        lines,
    })
}

/// `path` (absolute, or relative to `dir`) when it names a file inside `dir` once every link
/// and `..` is resolved.
fn inside(dir: &Path, path: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let file = dir.join(path).canonicalize().ok()?;
    (file.starts_with(&dir) && file.is_file()).then_some(file)
}

fn lines_of(instructions: Vec<Instruction>) -> Vec<DisasmLine> {
    instructions
        .into_iter()
        .map(|i| DisasmLine {
            offset: i.offset,
            bytes: i
                .bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            text: i.text,
            faulting: i.faulting,
            source: i.source,
        })
        .collect()
}

/// The faulting function from its module file around the faulting offset, with calls named and
/// source lines, when the RIP is in a known module; else the report's `Code:` bytes.
fn disassemble(r: &CrashReport, symbolizer: &Symbolizer) -> Option<Disassembly> {
    let rip = r.frames.iter().find(|f| f.rip && f.module.is_some());
    if let Some(Some(Ok(ins))) = rip.map(|f| symbolizer.disassemble_frame(f, DISASM_AROUND)) {
        if !ins.is_empty() {
            return Some(Disassembly {
                origin: "module".into(),
                function: rip.map(|f| f.function.clone()),
                instructions: lines_of(ins),
            });
        }
    }
    let ins = kmodlab_symbolize::disassemble_code_line(r.code.as_deref()?)?;
    if ins.is_empty() {
        return None;
    }
    Some(Disassembly {
        origin: "code-line".into(),
        function: None,
        instructions: lines_of(ins),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_around_a_line() {
        let dir = std::env::temp_dir().join(format!("kmodlab-ctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(dir.join("m.c"), text).unwrap();
        let c = source_context("m.c:10", std::slice::from_ref(&dir)).unwrap();
        assert_eq!(c.first_line, 7);
        assert_eq!(c.line, 10);
        assert_eq!(c.lines.first().unwrap(), "line 7");
        assert_eq!(c.lines.last().unwrap(), "line 13");
        let c = source_context("m.c:2", std::slice::from_ref(&dir)).unwrap();
        assert_eq!((c.first_line, c.lines.len()), (1, 5));
        let c = source_context("m.c:20", std::slice::from_ref(&dir)).unwrap();
        assert_eq!(c.lines.last().unwrap(), "line 20");
        assert!(source_context("m.c:21", std::slice::from_ref(&dir)).is_none());
        assert!(source_context("other.c:3", std::slice::from_ref(&dir)).is_none());
        assert!(source_context("m.c", std::slice::from_ref(&dir)).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Regression: a module printing `panicked at /etc/hostname:1:1:` made kmodlab read that
    /// host file into its output.
    #[test]
    fn sources_are_read_only_inside_the_module_directories() {
        let base = std::env::temp_dir().join(format!("kmodlab-ctx-jail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("module");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("m.c"), "one\ntwo\n").unwrap();
        std::fs::write(dir.join("sub/n.c"), "three\n").unwrap();
        std::fs::write(base.join("secret.c"), "secret\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret.c"), dir.join("link.c")).unwrap();
        let dirs = std::slice::from_ref(&dir);
        let outside = base.join("secret.c").display().to_string();
        for bad in [
            format!("{outside}:1"),
            "../secret.c:1".to_string(),
            "sub/../../secret.c:1".to_string(),
            "link.c:1".to_string(),
            "/etc/hostname:1".to_string(),
        ] {
            assert!(source_context(&bad, dirs).is_none(), "{bad}");
        }
        assert_eq!(source_context("m.c:2", dirs).unwrap().lines, ["one", "two"]);
        assert_eq!(source_context("sub/n.c:1", dirs).unwrap().lines, ["three"]);
        let absolute = format!("{}:1", dir.join("m.c").display());
        assert!(
            source_context(&absolute, dirs).is_some(),
            "inside, even absolute"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
