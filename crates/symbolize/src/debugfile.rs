//! [`DebugFile`]: one ELF file (a module or vmlinux), its symbols and its DWARF line tables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gimli::{EndianReader, LittleEndian};

use crate::elf::{demangle, Image, Region, Symbol};
use crate::Error;

/// Short file name, line, full path.
type FileLine = (String, u32, PathBuf);

/// The DWARF reader type: slices of the relocated file image.
pub(crate) type Reader = EndianReader<LittleEndian, Arc<[u8]>>;

/// A source location of a code address, with its inline chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The innermost function at the address: the inlined function when the address is in
    /// inlined code, else the function itself (demangled for Rust).
    pub function: String,
    /// The source file, short: relative to the module's own directory when the file is under
    /// it (`oops_mod.c`), relative to the kernel tree for kernel sources
    /// (`include/linux/printk.h`, `lib/foo.c`), else as recorded in the debug information.
    pub file: String,
    /// The line number (1-based).
    pub line: u32,
    /// The inline chain outward, innermost first: each entry is `"caller at file:line"`, the
    /// call site in the function that the previous one was inlined into. Empty when the address
    /// is not in inlined code.
    pub inlined_by: Vec<String>,
    /// The source file's path as recorded in the debug information, joined to the compilation
    /// directory (absolute for Kbuild builds).
    pub path: PathBuf,
    /// For a module: the innermost position of the chain that is in the module's own sources,
    /// `file:line` (`refcount.c:28` when the address is in `refcount_dec_and_test` from
    /// `include/linux/refcount.h` inlined there); `None` when no position is (and for a vmlinux).
    pub module_source: Option<String>,
}

impl Location {
    /// `file:line`, the form used in crash reports.
    pub fn source(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The source file's full path, to read lines of context from it.
    pub fn source_path(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Why a function and offset could not be turned into a source line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocateError {
    /// No symbol of that name in the file.
    NoSymbol {
        /// The function looked for.
        function: String,
        /// The file looked in.
        path: PathBuf,
    },
    /// The file has no DWARF line information (built without `-g` / `CONFIG_DEBUG_INFO`).
    NoDebugInfo {
        /// The file.
        path: PathBuf,
    },
    /// The function's size in the log differs from its size in the file: the file is not the
    /// build that crashed, and any line it gave would be wrong.
    StaleBuild {
        /// The function.
        function: String,
        /// The size printed in the log (`f+0x15/0x30` → 0x30).
        log_size: u64,
        /// The size of the function in the file, as kallsyms would print it.
        file_size: u64,
        /// The file.
        path: PathBuf,
    },
    /// The offset lies past the end of the function in the file.
    OutOfRange {
        /// The function.
        function: String,
        /// The offset looked up.
        offset: u64,
        /// The function's size in the file.
        size: u64,
        /// The file.
        path: PathBuf,
    },
    /// The offset is not the start of an instruction of the function in the file, as every
    /// address of running code is (the faulting instruction, or the one after a call): the file
    /// is not the build that crashed.
    NotAtInstruction {
        /// The function.
        function: String,
        /// The offset.
        offset: u64,
        /// The file.
        path: PathBuf,
    },
    /// The debug information has no line for that address.
    NoLine {
        /// The function.
        function: String,
        /// The offset looked up (after subtracting one for return addresses).
        offset: u64,
    },
    /// The symbol is not in a code section, or the file cannot be disassembled (not x86_64).
    NotCode {
        /// The function.
        function: String,
    },
    /// The DWARF data is malformed.
    Dwarf(String),
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocateError::NoSymbol { function, path } => {
                write!(f, "no symbol {function} in {}", path.display())
            }
            LocateError::NoDebugInfo { path } => write!(
                f,
                "{} has no debug information (build with -g / CONFIG_DEBUG_INFO)",
                path.display()
            ),
            LocateError::StaleBuild {
                function,
                log_size,
                file_size,
                path,
            } => write!(
                f,
                "{} is not the build that crashed: {function} is {log_size:#x} bytes in the log, {file_size:#x} in the file",
                path.display()
            ),
            LocateError::OutOfRange {
                function,
                offset,
                size,
                path,
            } => write!(
                f,
                "{function}+{offset:#x} is past the end of {function} ({size:#x} bytes) in {}",
                path.display()
            ),
            LocateError::NotAtInstruction {
                function,
                offset,
                path,
            } => write!(
                f,
                "{} is not the build that crashed: {function}+{offset:#x} is not the start of an instruction there",
                path.display()
            ),
            LocateError::NoLine { function, offset } => {
                write!(f, "no line information for {function}+{offset:#x}")
            }
            LocateError::NotCode { function } => write!(f, "{function} is not code that can be disassembled"),
            LocateError::Dwarf(e) => write!(f, "malformed debug information: {e}"),
        }
    }
}

impl std::error::Error for LocateError {}

/// One ELF file with (maybe) DWARF debug information: a kernel module (`.ko`, also `.ko.xz`,
/// `.ko.zst`, `.ko.gz`) or a `vmlinux`.
///
/// The file is read and relocated once, when opened; the DWARF units are parsed lazily, on the
/// first lookup that needs them, and kept.
pub struct DebugFile {
    path: PathBuf,
    pub(crate) image: Image,
    module_name: Option<String>,
    dwarf: Option<Mutex<addr2line::Context<Reader>>>,
    /// Names of addresses for the disassembler, built on first use.
    pub(crate) resolver: std::sync::OnceLock<Arc<Vec<(u64, u64, String)>>>,
    /// Directories relative to which source paths are shown, most specific meaning first.
    roots: Vec<PathBuf>,
    /// Compilation directories of the units (the kernel tree for Kbuild builds).
    comp_dirs: Vec<PathBuf>,
}

impl fmt::Debug for DebugFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugFile")
            .field("path", &self.path)
            .field("module_name", &self.module_name)
            .field("symbols", &self.image.symbols.len())
            .field("debug_info", &self.dwarf.is_some())
            .finish()
    }
}

impl DebugFile {
    /// Reads a module or vmlinux file, decompressing it first when it is xz, zstd or gzip data
    /// (told by its magic bytes).
    pub fn open(path: &Path) -> Result<DebugFile, Error> {
        let io = |e: std::io::Error| Error::new(path, e.to_string());
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let len = usize::try_from(len).map_err(|_| Error::new(path, "file too large".into()))?;
        // Read straight into the shared buffer: a vmlinux is hundreds of megabytes, no copy.
        let mut data: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
        let buf = Arc::get_mut(&mut data).expect("not shared yet");
        std::io::Read::read_exact(&mut f, buf).map_err(io)?;
        match kmodlab_modfile::decompress(&data) {
            Ok(std::borrow::Cow::Borrowed(_)) => {}
            Ok(std::borrow::Cow::Owned(d)) => return DebugFile::from_bytes(path, d),
            Err(e) => return Err(Error::new(path, e.to_string())),
        }
        DebugFile::from_image(path, data)
    }

    /// Reads an uncompressed ELF image already in memory; `path` names it in messages and
    /// tells the module's own directory (source paths under it are shown relative to it).
    pub fn from_bytes(path: &Path, data: Vec<u8>) -> Result<DebugFile, Error> {
        DebugFile::from_image(path, Arc::from(data))
    }

    fn from_image(path: &Path, data: Arc<[u8]>) -> Result<DebugFile, Error> {
        let image = Image::parse(data).map_err(|e| Error::new(path, e))?;
        let module_name = image
            .section_named(".modinfo")
            .and_then(|s| s.bytes(&image.data))
            .and_then(|b| {
                kmodlab_modfile::modinfo_from_section(b)
                    .name()
                    .map(str::to_string)
            })
            .or_else(|| {
                if image.relocatable {
                    module_name_from_path(path)
                } else {
                    None
                }
            });
        let dwarf = load_dwarf(&image);
        let mut roots = Vec::new();
        let mut comp_dirs = Vec::new();
        if let Some(dwarf) = &dwarf {
            let (unit_dirs, cds) = unit_dirs(dwarf);
            comp_dirs = cds;
            if image.relocatable {
                if let Some(dir) = path.parent() {
                    let dir = if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    };
                    // Not `/`: everything would be "the module's own" then.
                    for d in [dir.canonicalize().ok(), Some(dir.to_path_buf())]
                        .into_iter()
                        .flatten()
                    {
                        if d.components().count() > 1 && !roots.contains(&d) {
                            roots.push(d);
                        }
                    }
                }
                // The directory of the module's own sources (not under the kernel tree): where
                // it was built, also when the .ko has been copied elsewhere since.
                let own: Vec<&PathBuf> = unit_dirs
                    .iter()
                    .filter(|d| {
                        !comp_dirs.iter().any(|c| d.starts_with(c)) && !is_kernel_headers(d)
                    })
                    .collect();
                if let Some(first) = own.first() {
                    let mut common: PathBuf = (*first).clone();
                    for d in &own[1..] {
                        while !d.starts_with(&common) {
                            if !common.pop() {
                                break;
                            }
                        }
                    }
                    if common.components().count() > 1 {
                        roots.push(common);
                    }
                }
            }
        }
        let dwarf = dwarf
            .and_then(|d| addr2line::Context::from_dwarf(d).ok())
            .map(Mutex::new);
        Ok(DebugFile {
            path: path.to_path_buf(),
            image,
            module_name,
            dwarf,
            resolver: std::sync::OnceLock::new(),
            roots,
            comp_dirs,
        })
    }

    /// The file's path, as given to [`DebugFile::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The module's name: `name=` of `.modinfo`, else the file name without its extensions and
    /// with `-` turned into `_`. `None` for a vmlinux.
    pub fn module_name(&self) -> Option<&str> {
        self.module_name.as_deref()
    }

    /// Whether the file has DWARF debug information.
    pub fn has_debug_info(&self) -> bool {
        self.dwarf.is_some()
    }

    /// The size of the allocated section `name` (`.init.text`), as the module loader maps it.
    pub fn section_size(&self, name: &str) -> Option<u64> {
        self.image
            .sections
            .iter()
            .find(|s| s.name == name && s.region != Region::None)
            .map(|s| s.size)
    }

    /// What kallsyms prints for the address `offset` bytes into the loaded module's section
    /// `section`: the function's name as in the file, the offset into it and its printed size
    /// (`leak_init+0x46/0x80`); `None` outside every function. The alias the module's
    /// `module_init()`/`module_exit()` make (`init_module`, `cleanup_module`) gives way to the
    /// function's own name.
    pub fn symbol_at(&self, section: &str, offset: u64) -> Option<(String, u64, u64)> {
        let index = self
            .image
            .sections
            .iter()
            .position(|s| s.name == section && s.region != Region::None)?;
        let addr = self.image.sections[index].addr.checked_add(offset)?;
        let alias = |name: &str| name == "init_module" || name == "cleanup_module";
        self.image
            .symbols
            .iter()
            .filter(|s| s.section == Some(index) && s.addr <= addr)
            .filter(|s| addr - s.addr < self.printed_size(s).max(1))
            .min_by_key(|s| (addr - s.addr, !s.func, alias(&s.name)))
            .map(|s| (s.name.clone(), addr - s.addr, self.printed_size(s)))
    }

    /// The size of a function as kallsyms would print it for this file (`f+off/SIZE`): the
    /// distance to the next symbol in the loaded module, or `st_size` for a vmlinux.
    pub fn function_size(&self, name: &str) -> Option<u64> {
        let s = self.find_symbols(name).into_iter().next()?;
        Some(self.printed_size(s))
    }

    fn printed_size(&self, s: &Symbol) -> u64 {
        if self.image.relocatable && s.kallsyms_size != 0 {
            s.kallsyms_size
        } else if s.size != 0 {
            s.size
        } else {
            s.kallsyms_size
        }
    }

    /// Symbols of that name, in symbol-table order: the name as in the file, or demangled
    /// (Rust, with or without hash).
    fn find_symbols(&self, name: &str) -> Vec<&Symbol> {
        let mut found: Vec<&Symbol> = self
            .image
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.image.symbols[i])
            .filter(|s| s.section.is_some_and(|i| self.image.sections[i].is_exec()))
            .collect();
        // Functions before labels.
        found.sort_by_key(|s| !s.func);
        found
    }

    /// The symbol for `function`, checking the size printed in the log against the file.
    pub(crate) fn symbol(
        &self,
        function: &str,
        log_size: Option<u64>,
    ) -> Result<&Symbol, LocateError> {
        let found = self.find_symbols(function);
        if found.is_empty() {
            return Err(LocateError::NoSymbol {
                function: function.to_string(),
                path: self.path.clone(),
            });
        }
        let Some(log_size) = log_size else {
            return Ok(found[0]);
        };
        if let Some(s) = found
            .iter()
            .find(|s| s.kallsyms_size == log_size || s.size == log_size)
        {
            return Ok(s);
        }
        Err(LocateError::StaleBuild {
            function: function.to_string(),
            log_size,
            file_size: self.printed_size(found[0]),
            path: self.path.clone(),
        })
    }

    /// The source location of `function+offset`.
    ///
    /// `return_address` is true for a return address (every call-trace frame but the faulting
    /// instruction): the address looked up is then `offset - 1`, inside the call instruction,
    /// so that the line is the call's and not the next statement's. `log_size` is the function
    /// size printed in the log (`f+0x15/0x30` → 0x30): when it differs from the file's, the
    /// file is not the build that crashed and [`LocateError::StaleBuild`] is returned instead of a
    /// wrong line.
    pub fn locate(
        &self,
        function: &str,
        offset: u64,
        return_address: bool,
        log_size: Option<u64>,
    ) -> Result<Location, LocateError> {
        let sym = self.symbol(function, log_size)?;
        let limit = sym.size.max(sym.kallsyms_size);
        if limit != 0 && offset > limit {
            return Err(LocateError::OutOfRange {
                function: function.to_string(),
                offset,
                size: limit,
                path: self.path.clone(),
            });
        }
        let probe_offset = if return_address {
            offset.saturating_sub(1)
        } else {
            offset
        };
        let ctx = self
            .dwarf
            .as_ref()
            .ok_or_else(|| LocateError::NoDebugInfo {
                path: self.path.clone(),
            })?;
        let ctx = ctx.lock().unwrap_or_else(|e| e.into_inner());
        let probe = sym.addr.wrapping_add(probe_offset);
        let mut frames = ctx
            .find_frames(probe)
            .skip_all_loads()
            .map_err(|e| LocateError::Dwarf(e.to_string()))?;
        let mut chain: Vec<(String, Option<FileLine>)> = Vec::new();
        loop {
            let frame = match frames.next() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(LocateError::Dwarf(e.to_string())),
            };
            let name = frame
                .function
                .as_ref()
                .and_then(|f| f.raw_name().ok())
                .map(|n| demangle(n.as_ref()))
                .unwrap_or_else(|| sym.display.clone());
            let loc = frame.location.as_ref().and_then(|l| {
                let file = l.file?;
                let line = l.line.filter(|&n| n != 0)?;
                Some((self.short_path(file), line, PathBuf::from(file)))
            });
            chain.push((name, loc));
            if chain.len() > 256 {
                break;
            }
        }
        let no_line = || LocateError::NoLine {
            function: function.to_string(),
            offset: probe_offset,
        };
        let (first, rest) = chain.split_first().ok_or_else(no_line)?;
        let (file, line, path) = first.1.clone().ok_or_else(no_line)?;
        let inlined_by = rest
            .iter()
            .map(|(name, loc)| match loc {
                Some((file, line, _)) => format!("{name} at {file}:{line}"),
                None => format!("{name} at ??"),
            })
            .collect();
        let module_source = chain.iter().find_map(|(_, loc)| {
            let (file, line, path) = loc.as_ref()?;
            self.is_own(path).then(|| format!("{file}:{line}"))
        });
        Ok(Location {
            function: first.0.clone(),
            file,
            line,
            inlined_by,
            path,
            module_source,
        })
    }

    /// `file:line` of the line-table row for an address (no inline chain), for disassembly.
    pub(crate) fn line_at(&self, addr: u64) -> Option<String> {
        let ctx = self
            .dwarf
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let loc = ctx.find_location(addr).ok()??;
        let line = loc.line.filter(|&n| n != 0)?;
        Some(format!("{}:{}", self.short_path(loc.file?), line))
    }

    /// Whether a source file is the module's own (under the module's directory or where it was
    /// built), not the kernel's.
    fn is_own(&self, path: &Path) -> bool {
        self.image.relocatable
            && !is_kernel_headers(path)
            && self.roots.iter().any(|r| path.starts_with(r))
    }

    /// A source path made short: relative to the module's directory or the kernel tree.
    fn short_path(&self, file: &str) -> String {
        let p = Path::new(file);
        for root in self.roots.iter().chain(self.comp_dirs.iter()) {
            if let Ok(rel) = p.strip_prefix(root) {
                if !rel.as_os_str().is_empty() {
                    return rel.to_string_lossy().into_owned();
                }
            }
        }
        if let Some(rel) = kernel_headers_relative(p) {
            return rel;
        }
        file.to_string()
    }
}

/// `/usr/src/linux-headers-6.12.95+deb12-common/include/linux/printk.h` → `include/linux/printk.h`
/// (also `/usr/src/linux-VERSION/...` and `/usr/src/kernels/VERSION/...`).
fn kernel_headers_relative(p: &Path) -> Option<String> {
    let rest = p.strip_prefix("/usr/src").ok()?;
    let mut comps = rest.components();
    let first = comps.next()?.as_os_str().to_str()?;
    if first == "kernels" {
        comps.next()?;
    } else if !first.starts_with("linux") {
        return None;
    }
    let rel = comps.as_path();
    (!rel.as_os_str().is_empty()).then(|| rel.to_string_lossy().into_owned())
}

fn is_kernel_headers(p: &Path) -> bool {
    kernel_headers_relative(p).is_some() || p.starts_with("/usr/src")
}

/// `oops-mod.ko.xz` → `oops_mod`.
pub(crate) fn module_name_from_path(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = match name.find(".ko") {
        Some(i) => &name[..i],
        None => name.split('.').next()?,
    };
    let stem = Some(stem).filter(|s| !s.is_empty())?;
    Some(stem.replace('-', "_"))
}

/// Loads the DWARF sections of the image; `None` without `.debug_info` or `.debug_line`.
fn load_dwarf(image: &Image) -> Option<gimli::Dwarf<Reader>> {
    // Compressed debug sections (CONFIG_DEBUG_INFO_COMPRESSED_*) are not read.
    let compressed = |s: &crate::elf::Section| s.flags & object::elf::SHF_COMPRESSED.0 != 0;
    for name in [".debug_info", ".debug_line"] {
        if compressed(image.section_named(name)?) {
            return None;
        }
    }
    let empty: Arc<[u8]> = Arc::from(&[][..]);
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let reader = image
            .section_named(id.name())
            .filter(|s| !compressed(s))
            .and_then(|s| {
                s.bytes(&image.data)?;
                let end = s.offset + s.size as usize;
                Some(EndianReader::new(image.data.clone(), LittleEndian).range(s.offset..end))
            })
            .unwrap_or_else(|| EndianReader::new(empty.clone(), LittleEndian));
        Ok(reader)
    };
    gimli::Dwarf::load(load).ok()
}

/// The directories of the units' primary source files (absolute names only) and the
/// compilation directories.
fn unit_dirs(dwarf: &gimli::Dwarf<Reader>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use gimli::Reader as _;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut comp_dirs: Vec<PathBuf> = Vec::new();
    let mut headers = dwarf.units();
    let mut n = 0;
    while let Ok(Some(header)) = headers.next() {
        n += 1;
        if n > 100_000 {
            break;
        }
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let comp_dir = unit.comp_dir.as_ref().and_then(|c| {
            c.to_string_lossy()
                .ok()
                .map(|s| PathBuf::from(s.into_owned()))
        });
        if let Some(c) = &comp_dir {
            if c.is_absolute() && !comp_dirs.contains(c) {
                comp_dirs.push(c.clone());
            }
        }
        let name = unit.name.as_ref().and_then(|c| {
            c.to_string_lossy()
                .ok()
                .map(|s| PathBuf::from(s.into_owned()))
        });
        if let Some(name) = name {
            if name.is_absolute() {
                if let Some(parent) = name.parent() {
                    if !dirs.iter().any(|d| d == parent) {
                        dirs.push(parent.to_path_buf());
                    }
                }
            }
        }
    }
    (dirs, comp_dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_from_file_names() {
        let n = |p: &str| module_name_from_path(Path::new(p));
        assert_eq!(n("/x/oops_mod.ko").as_deref(), Some("oops_mod"));
        assert_eq!(n("snd-hda-intel.ko.xz").as_deref(), Some("snd_hda_intel"));
        assert_eq!(n("a.ko.zst").as_deref(), Some("a"));
        assert_eq!(n(".ko"), None);
    }

    #[test]
    fn kernel_header_paths_are_made_relative() {
        let r = |p: &str| kernel_headers_relative(Path::new(p));
        assert_eq!(
            r("/usr/src/linux-headers-6.12.95+deb12-common/include/linux/printk.h").as_deref(),
            Some("include/linux/printk.h")
        );
        assert_eq!(
            r("/usr/src/kernels/6.8.0/include/linux/list.h").as_deref(),
            Some("include/linux/list.h")
        );
        assert_eq!(r("/home/me/mod/x.c"), None);
        assert_eq!(r("/usr/src/other/x.c"), None);
    }

    #[test]
    fn errors_read_as_one_line() {
        let e = LocateError::StaleBuild {
            function: "my_oops_init".into(),
            log_size: 0x30,
            file_size: 0x38,
            path: "/m/oops_mod.ko".into(),
        };
        assert_eq!(
            e.to_string(),
            "/m/oops_mod.ko is not the build that crashed: my_oops_init is 0x30 bytes in the log, 0x38 in the file"
        );
        let e = LocateError::NoDebugInfo {
            path: "/m/x.ko".into(),
        };
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn symbolizer_and_files_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DebugFile>();
        check::<crate::Symbolizer>();
    }

    #[test]
    fn not_elf() {
        let e = DebugFile::from_bytes(Path::new("x.ko"), b"hello".to_vec()).unwrap_err();
        assert!(e.to_string().starts_with("x.ko: "), "{e}");
        let e = DebugFile::open(Path::new("/nonexistent/x.ko")).unwrap_err();
        assert_eq!(e.path(), Path::new("/nonexistent/x.ko"));
    }
}
