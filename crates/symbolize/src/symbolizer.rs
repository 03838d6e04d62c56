//! [`Symbolizer`]: module files by name, loaded once, and the symbolization of whole reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use kmodlab_crash::{CrashReport, Frame};

use crate::debugfile::{module_name_from_path, DebugFile, LocateError};
use crate::disasm::Instruction;
use crate::Error;

/// A file known by path, opened on first use.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    file: OnceLock<Result<Arc<DebugFile>, String>>,
}

impl Entry {
    fn new(path: PathBuf) -> Entry {
        Entry {
            path,
            file: OnceLock::new(),
        }
    }

    fn loaded(file: DebugFile) -> Entry {
        let e = Entry::new(file.path().to_path_buf());
        let _ = e.file.set(Ok(Arc::new(file)));
        e
    }

    fn get(&self) -> Result<Arc<DebugFile>, String> {
        self.file
            .get_or_init(|| {
                DebugFile::open(&self.path)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Symbolizes crash reports: module files found by module name (opened once, on first use, and
/// kept) and optionally a vmlinux with debug information for the kernel's own frames.
///
/// `Symbolizer` is `Send + Sync`; lookups take `&self`.
#[derive(Debug, Default)]
pub struct Symbolizer {
    modules: HashMap<String, Entry>,
    vmlinux: Option<Entry>,
}

/// Whether a file name is a module file: `*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`.
fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The names `module_init()` and `module_exit()` give a module's init and exit functions.
const ALIASES: [&str; 2] = ["init_module", "cleanup_module"];

/// The function's own name for a module frame printed under an alias of `module_init()` or
/// `module_exit()` (`init_module`): the outermost function of its location's inline chain, as
/// the debug information names it; `None` for any other frame.
fn own_name(frame: &Frame, loc: &crate::Location) -> Option<String> {
    if frame.module.is_none() || !ALIASES.contains(&frame.function.as_str()) {
        return None;
    }
    let outer = loc
        .inlined_by
        .last()
        .and_then(|c| c.split_once(" at ").map(|(f, _)| f))
        .unwrap_or(&loc.function);
    (!outer.is_empty() && outer != frame.function).then(|| outer.to_string())
}

impl Symbolizer {
    /// An empty symbolizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every module file below `dir` (recursively; symbolic links to directories
    /// are not followed), keyed by module name taken from the file name (`-` → `_`). Files are
    /// opened lazily. A module already known keeps its file. Returns how many module files were
    /// found.
    pub fn add_module_dir(&mut self, dir: &Path) -> Result<usize, Error> {
        let mut stack = vec![dir.to_path_buf()];
        let mut found = Vec::new();
        let mut first = true;
        while let Some(d) = stack.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if first => return Err(Error::new(&d, e.to_string())),
                Err(_) => continue,
            };
            first = false;
            for entry in entries.flatten() {
                let Ok(ft) = entry.file_type() else { continue };
                let path = entry.path();
                if ft.is_dir() {
                    stack.push(path);
                    continue;
                }
                let is_file =
                    ft.is_file() || (ft.is_symlink() && path.metadata().is_ok_and(|m| m.is_file()));
                if is_file && entry.file_name().to_str().is_some_and(is_module_file) {
                    found.push(path);
                }
            }
        }
        found.sort();
        let n = found.len();
        for path in found {
            if let Some(name) = module_name_from_path(&path) {
                self.modules.entry(name).or_insert_with(|| Entry::new(path));
            }
        }
        Ok(n)
    }

    /// Registers one module file, opened now (so that its errors show here); its name is the
    /// `name=` of its `.modinfo`. It replaces a module of the same name.
    pub fn add_module_file(&mut self, path: &Path) -> Result<(), Error> {
        let file = DebugFile::open(path)?;
        let name = file
            .module_name()
            .map(str::to_string)
            .ok_or_else(|| Error::new(path, "not a kernel module (relocatable ELF file)".into()))?;
        self.modules.insert(name, Entry::loaded(file));
        Ok(())
    }

    /// Sets the vmlinux (with debug information) used for frames outside modules; it is read
    /// on first use.
    pub fn set_vmlinux(&mut self, path: &Path) -> Result<(), Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::new(path, e.to_string()))?;
        if !meta.is_file() {
            return Err(Error::new(path, "not a file".into()));
        }
        self.vmlinux = Some(Entry::new(path.to_path_buf()));
        Ok(())
    }

    /// The file for a module (`None`: the vmlinux), if known and readable.
    pub fn file(&self, module: Option<&str>) -> Option<Arc<DebugFile>> {
        self.entry(module)?.get().ok()
    }

    fn entry(&self, module: Option<&str>) -> Option<&Entry> {
        match module {
            Some(m) => self
                .modules
                .get(m)
                .or_else(|| self.modules.get(&m.replace('-', "_"))),
            None => self.vmlinux.as_ref(),
        }
    }

    /// Locates one frame: `Ok(None)` when there is no file for its module or no offset.
    /// `exact` is whether the frame's address is the faulting instruction itself (the address
    /// is used as is) rather than a return address (one is subtracted).
    pub fn locate_frame(
        &self,
        frame: &Frame,
        exact: bool,
    ) -> Result<Option<crate::Location>, LocateError> {
        let Some(offset) = frame.offset else {
            return Ok(None);
        };
        let Some(file) = self.file(frame.module.as_deref()) else {
            return Ok(None);
        };
        file.locate(lookup_name(frame), offset, !exact, frame.size)
            .map(Some)
    }

    /// Disassembles the function of a frame from its file, around the frame's offset (whole
    /// when short; see [`DebugFile::disassemble_around`]), after checking that the file is the
    /// build that crashed. `None` when there is no file for the frame's module or no offset.
    pub fn disassemble_frame(
        &self,
        frame: &Frame,
        context: usize,
    ) -> Option<Result<Vec<Instruction>, LocateError>> {
        let offset = frame.offset?;
        let file = self.file(frame.module.as_deref())?;
        let check = if frame.rip || frame.reliable {
            file.check_address(lookup_name(frame), offset, frame.size)
        } else {
            file.symbol(lookup_name(frame), frame.size).map(|_| ())
        };
        if let Err(e) = check {
            return Some(Err(e));
        }
        Some(file.disassemble_around(lookup_name(frame), offset, context))
    }

    /// Fills `source` (`file:line`, the innermost position) and `inlined_by` of every frame it
    /// can, sets `report.source` from the guilty frame (`report.guilty_frame`, else the first
    /// whose function and module are the report's): for a module, the innermost position of its inline chain that is in the
    /// module's own sources (`refcount.c:28` rather than `include/linux/refcount.h:275` for a
    /// warning in an inlined `refcount_dec_and_test`), else the frame's source.
    ///
    /// Returns notes, one line each: a module file that is not the build that crashed (its
    /// frames are then left alone: their lines would be wrong), a guilty module without debug
    /// information or without a file.
    ///
    /// Rust frames (`_RNv...`, `_ZN...`) are looked up by the name as printed and then renamed
    /// to their demangled name without hash (`rust_oops::init`), as is `report.function`.
    ///
    /// The RIP frame (`frame.rip`) is looked up at its offset; every other frame is a return
    /// address and is looked up at offset − 1, except a frame with the same function, offset
    /// and module as the RIP frame (the `? f+off` the unwinder prints from the exception
    /// frame), which is the faulting address too, and the first frame of a KFENCE report of a
    /// faulting access (`KFENCE: out-of-bounds read in f`), printed from the fault's registers.
    ///
    /// A file is taken for another build than the one that crashed when a function's size in
    /// the log differs from the file's, or when the RIP or a reliable frame is past the end of
    /// its function or not at an instruction boundary in the file (see
    /// [`DebugFile::check_address`]).
    pub fn symbolize(&self, report: &mut CrashReport) -> Vec<String> {
        let mut notes: Vec<String> = Vec::new();
        let note = |n: String, notes: &mut Vec<String>| {
            if !notes.contains(&n) {
                notes.push(n);
            }
        };
        let rip: Option<(String, Option<u64>, Option<String>)> = report
            .frames
            .iter()
            .find(|f| f.rip)
            .map(|f| (f.function.clone(), f.offset, f.module.clone()));
        // KFENCE prints the stack of a faulting access from the fault's registers: its first
        // frame is the faulting instruction, not a return address.
        let kfence_access = report.title.starts_with("KFENCE: ")
            && (report.title.contains(" read in ") || report.title.contains(" write in "));
        // Files that are not the build that crashed: no line from them at all.
        let mut stale: Vec<PathBuf> = Vec::new();
        for frame in &report.frames {
            let Some(file) = self.file(frame.module.as_deref()) else {
                continue;
            };
            if stale.iter().any(|p| p == file.path()) {
                continue;
            }
            // Sizes for every frame; offsets only for addresses known to be real.
            let check = match frame.offset {
                Some(off) if frame.rip || frame.reliable => {
                    file.check_address(lookup_name(frame), off, frame.size)
                }
                _ => file.symbol(lookup_name(frame), frame.size).map(|_| ()),
            };
            if let Err(
                e @ (LocateError::StaleBuild { .. }
                | LocateError::OutOfRange { .. }
                | LocateError::NotAtInstruction { .. }),
            ) = check
            {
                note(label(frame, &e), &mut notes);
                stale.push(file.path().to_path_buf());
            }
        }
        // The module's own line of each frame, for the report's source.
        let mut own: Vec<Option<String>> = vec![None; report.frames.len()];
        let mut renamed: Vec<(String, String)> = Vec::new();
        for (k, frame) in report.frames.iter_mut().enumerate() {
            let Some(file) = self.file(frame.module.as_deref()) else {
                continue;
            };
            if stale.iter().any(|p| p == file.path()) {
                continue;
            }
            let exact = frame.rip
                || (k == 0 && kfence_access)
                || rip.as_ref().is_some_and(|(f, o, m)| {
                    *f == frame.function && *o == frame.offset && *m == frame.module
                });
            match self.locate_frame(frame, exact) {
                Ok(Some(loc)) => {
                    // module_init()/module_exit() make the aliases `init_module` and
                    // `cleanup_module`, and the compiler may keep only the alias in the symbol
                    // table: the debug information has the function's own name.
                    if let Some(own) = own_name(frame, &loc) {
                        renamed.push((frame.function.clone(), own.clone()));
                        frame.function = own;
                    }
                    frame.source = Some(loc.source());
                    own[k] = loc.module_source.clone();
                    frame.inlined_by = loc.inlined_by;
                }
                Ok(None) => {}
                Err(e @ (LocateError::NoDebugInfo { .. } | LocateError::OutOfRange { .. })) => {
                    note(label(frame, &e), &mut notes)
                }
                Err(e @ LocateError::NoSymbol { .. })
                    if frame.module.is_some() && frame.reliable =>
                {
                    note(label(frame, &e), &mut notes)
                }
                Err(_) => {}
            }
        }
        // KASAN's allocation and free stacks: every frame's line, and the module's own line of
        // its first module frame (the kmalloc or kfree call).
        for stack in &mut report.stacks {
            for frame in &mut stack.frames {
                let Some(file) = self.file(frame.module.as_deref()) else {
                    continue;
                };
                if stale.iter().any(|p| p == file.path()) {
                    continue;
                }
                let Ok(Some(loc)) = self.locate_frame(frame, false) else {
                    continue;
                };
                if let Some(own) = own_name(frame, &loc) {
                    frame.function = own;
                }
                if frame.module.is_some() && stack.source.is_none() {
                    stack.function = Some(frame.function.clone());
                    stack.source = Some(loc.module_source.clone().unwrap_or_else(|| loc.source()));
                }
                frame.source = Some(loc.source());
                frame.inlined_by = loc.inlined_by;
            }
        }
        if let Some(module) = &report.module {
            match self.entry(Some(module)).map(Entry::get) {
                None if !self.modules.is_empty() => note(
                    format!("{module}: no module file for it in the module directories"),
                    &mut notes,
                ),
                Some(Err(e)) => note(format!("{module}: {e}"), &mut notes),
                _ => {}
            }
        }
        if let Some((alias, name)) = renamed
            .iter()
            .find(|(alias, _)| report.function.as_deref() == Some(alias.as_str()))
        {
            if let Some(head) = report.title.strip_suffix(alias.as_str()) {
                report.title = format!("{head}{name}");
            }
            report.function = Some(name.clone());
        }
        // Rust symbols as people read them (`rust_oops::init`), once looked up.
        for frame in &mut report.frames {
            if let Ok(d) = rustc_demangle::try_demangle(&frame.function) {
                let d = format!("{d:#}");
                if report.function.as_deref() == Some(frame.function.as_str()) {
                    report.function = Some(d.clone());
                }
                frame.function = d;
            }
        }
        // The guilty frame as the parser chose it; else the first with the report's function.
        let guilty = report
            .guilty_frame
            .filter(|&k| k < report.frames.len())
            .or_else(|| {
                let function = report.function.as_ref()?;
                report
                    .frames
                    .iter()
                    .position(|f| &f.function == function && f.module == report.module)
            });
        // A Rust panic names its source line itself (`panicked at FILE:LINE`): that one stands.
        let stands = report.kind == kmodlab_crash::ReportKind::RustPanic && report.source.is_some();
        if let Some(k) = guilty.filter(|_| !stands) {
            if let Some(src) = own[k].take().or_else(|| report.frames[k].source.clone()) {
                report.source = Some(src);
            }
        }
        notes
    }
}

/// The name to look a frame up by: the symbol as printed when the parser demangled it.
fn lookup_name(frame: &Frame) -> &str {
    frame.symbol.as_deref().unwrap_or(&frame.function)
}

/// `oops_mod: ...` (or `vmlinux: ...`) before an error.
fn label(frame: &Frame, e: &LocateError) -> String {
    format!("{}: {e}", frame.module.as_deref().unwrap_or("vmlinux"))
}
