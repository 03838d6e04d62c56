//! `depmod`, as kmod 30 has it (Debian bookworm's `30+20221128`): same options, same messages,
//! and the same output files byte for byte: `modules.dep`, `modules.dep.bin`,
//! `modules.alias`, `modules.alias.bin`, `modules.softdep`, `modules.symbols`,
//! `modules.symbols.bin`, `modules.builtin.bin`, `modules.builtin.alias.bin` (from
//! `modules.builtin.modinfo`) and `modules.devname`. (kmod 30 has no `-o` and writes no
//! `modules.weakdep`; both came later.)
//!
//! The work is kmod's, in kmod's order: options, configuration (`depmod.d`), the search of the
//! module directory (and `external` ones), the module order (`modules.order`), reading every
//! module, resolving symbols, sorting, writing. Two things differ, neither visible in the
//! results: modules are read (and decompressed) on all cores, and what was read from each is
//! cached (see [`cache`] for where, and why a cache cannot change the outputs even when depmod
//! runs as root), so that a second run reads only the modules that changed.
//! The computation itself is in [`kmodlab_modindex::depmod`].
//!
//! Not reproduced: kmod's debug messages (`-vvv`; they print pointers) and libkmod's `INFO`
//! lines about its context; zstd error messages word libzstd's errors differently.

mod cache;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};

use kmodlab_modfile::kmod_elf::{Bind, KmodElf};
use kmodlab_modfile::kmod_file::{read_image, Compressions};

use crate::kernel_state::Kernel;
use kmodlab_modindex::config::{DepmodConfig, Search};
use kmodlab_modindex::depmod::{
    module_order, modules_builtin_alias_bin, modules_builtin_bin, parse_symvers, parse_system_map,
    resolve, Module, Need, Options, ResolveError, Resolved, Symbol, Written,
};
use kmodlab_modindex::names::{has_module_extension, path_to_modname};
use kmodlab_modindex::{Diagnostic, Level, NonAsciiError};

use crate::getopt::{long, Getopt, HasArg, LongOpt};

/// kmod's default log priority (`LOG_WARNING`); each `-v` adds one.
const LOG_WARNING: u8 = 4;

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "aAb:C:E:F:euqrvnP:wmVh";

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("all", HasArg::No, b'a' as u32),
    long("quick", HasArg::No, b'A' as u32),
    long("basedir", HasArg::Required, b'b' as u32),
    long("config", HasArg::Required, b'C' as u32),
    long("symvers", HasArg::Required, b'E' as u32),
    long("filesyms", HasArg::Required, b'F' as u32),
    long("errsyms", HasArg::No, b'e' as u32),
    long("unresolved-error", HasArg::No, b'u' as u32),
    long("quiet", HasArg::No, b'q' as u32),
    long("root", HasArg::No, b'r' as u32),
    long("verbose", HasArg::No, b'v' as u32),
    long("show", HasArg::No, b'n' as u32),
    long("dry-run", HasArg::No, b'n' as u32),
    long("symbol-prefix", HasArg::Required, b'P' as u32),
    long("warn", HasArg::No, b'w' as u32),
    long("map", HasArg::No, b'm' as u32),
    long("version", HasArg::No, b'V' as u32),
    long("help", HasArg::No, b'h' as u32),
];

/// Where depmod.d files are read from, in order, when `-C` is not given.
const CONFIG_DIRS: [&str; 4] = [
    "/etc/depmod.d",
    "/run/depmod.d",
    "/usr/local/lib/depmod.d",
    "/lib/depmod.d",
];

/// Runs `depmod` with `args` (`args[0]` is the name it was invoked as); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let code = run(&args, &Kernel::host(), &mut out, &mut stderr.lock());
    if out.flush().is_err() {
        return 1;
    }
    if code == ABORTED {
        std::process::abort();
    }
    code
}

/// What [`run`] returns where kmod 30 fails an assertion and aborts (the status a shell shows
/// for SIGABRT); [`main`] then aborts too.
pub const ABORTED: i32 = 134;

/// Runs `depmod` with `args` (`args[0]` is the name it was invoked as), writing what kmod's
/// depmod writes on stdout (`-n`, `-v`, `-h`, `-V`) to `out` and its messages to `err`;
/// returns the exit code. The module directory's files are written as kmod writes them.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "depmod".into());
    let short_name = argv0.rsplit('/').next().unwrap_or("depmod").to_owned();
    let mut tool = Tool {
        out,
        log: Log {
            err,
            log: crate::tool_log::Log::new(&short_name),
        },
        context: false,
        kernel,
    };
    let result = tool.depmod(args);
    // libkmod's farewell when kmod frees its context (shown from -vv on); a fatal error exits
    // without freeing it.
    if tool.context && !matches!(result, Err(Exit { fatal: true, .. })) {
        tool.log.info(format!(
            "../libkmod/libkmod.c:334 kmod_unref() context {CONTEXT_ADDRESS:#x} released\n"
        ));
    }
    match result {
        Ok(()) => 0,
        Err(exit) => exit.code,
    }
}

/// Stand-ins for the pointers libkmod prints in its `-vv` messages.
const CONTEXT_ADDRESS: usize = 0x55d5_c0a3_e2a0;
const LOG_FN_ADDRESS: usize = 0x55d5_bf8e_3d70;

/// `parse_symvers` or `parse_system_map`.
type SymbolFileParser = fn(&[u8], &str, u8) -> (Vec<Symbol>, Vec<Diagnostic>);

/// kmod stopped with this exit status; `fatal` after a `FATAL` message (kmod then exits on
/// the spot).
struct Exit {
    code: i32,
    fatal: bool,
}

/// Exit status 1 after an error that kmod handles by cleaning up first.
const FAILED: Exit = Exit {
    code: 1,
    fatal: false,
};

struct Log<'w> {
    err: &'w mut dyn Write,
    log: crate::tool_log::Log,
}

impl Log<'_> {
    fn print(&mut self, level: Level, message: &str) {
        self.log
            .print(self.err, i32::from(level.priority()), message);
    }

    fn diag(&mut self, d: &Diagnostic) {
        self.print(d.level, &d.message);
    }

    fn error(&mut self, message: impl AsRef<str>) {
        self.print(Level::Error, message.as_ref());
    }

    fn warn(&mut self, message: impl AsRef<str>) {
        self.print(Level::Warning, message.as_ref());
    }

    fn info(&mut self, message: impl AsRef<str>) {
        self.print(Level::Info, message.as_ref());
    }

    /// kmod's `CRIT`: always printed, then exit status 1.
    fn fatal(&mut self, message: impl AsRef<str>) -> Exit {
        let _ = write!(self.err, "{}: FATAL: {}", self.log.name, message.as_ref());
        Exit {
            code: 1,
            fatal: true,
        }
    }
}

struct Tool<'w> {
    out: &'w mut dyn Write,
    log: Log<'w>,
    /// kmod has created its libkmod context (and will say so at the end with -vv).
    context: bool,
    /// The running kernel (its release is the default version).
    kernel: &'w Kernel,
}

/// `strerror(errno)` of an I/O error.
fn strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => kmodlab_sys::strerror(code),
        None => e.to_string(),
    }
}

use libc::{EEXIST, ENOENT, ENOSPC};

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// sscanf(version, "%u.%u") == 2.
fn is_version_number(version: &[u8]) -> bool {
    fn number(s: &[u8]) -> Option<&[u8]> {
        let mut i = 0;
        while s
            .get(i)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == 0x0b)
        {
            i += 1;
        }
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then(|| &s[i..])
    }
    number(version)
        .and_then(|rest| rest.strip_prefix(b"."))
        .and_then(number)
        .is_some()
}

/// The directory as kmod's `path_make_absolute_cwd` makes it: as given when absolute, else
/// after the current directory (`$PWD` when it names the current directory, as
/// `get_current_dir_name` does).
fn absolute(path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let cwd = std::env::current_dir().ok();
    let pwd = std::env::var_os("PWD").filter(|pwd| {
        let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        match (fs::metadata(pwd), fs::metadata(".")) {
            (Ok(a), Ok(b)) => pwd.as_bytes().starts_with(b"/") && same(&a, &b),
            _ => false,
        }
    });
    let mut out = match (pwd, cwd) {
        (Some(pwd), _) => pwd.as_bytes().to_vec(),
        (None, Some(cwd)) => cwd.as_os_str().as_bytes().to_vec(),
        (None, None) => Vec::new(),
    };
    out.push(b'/');
    out.extend_from_slice(path);
    out
}

/// What depmod got from reading one module, or the messages that reading it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// libkmod's and depmod's messages, in kmod's order.
    messages: Vec<Diagnostic>,
    exports: Vec<Symbol>,
    needs: Vec<Need>,
    /// The `alias` and `softdep` entries of `.modinfo`.
    modinfo: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads one module the way libkmod reads it for depmod (`kmod_module_get_symbols`, then
/// `_get_info`, then `_get_dependency_symbols`), with the same messages.
fn load_module(path: &[u8]) -> Loaded {
    let mut loaded = Loaded::default();
    let failed = |code: i32| {
        Diagnostic::new(
            Level::Error,
            format!(
                "failed to load symbols from {}: {}\n",
                lossy(path),
                kmodlab_sys::strerror(code)
            ),
        )
    };
    // libkmod's messages about a file it cannot decompress go nowhere: it has no context to
    // log with at that point.
    let image = match read_image(os(path).as_ref(), Compressions::ALL) {
        Ok(image) => image,
        Err(code) => {
            if code != ENOENT {
                loaded.messages.push(failed(code));
            }
            return loaded;
        }
    };
    let elf = match KmodElf::new(&image[..]) {
        Ok(elf) => elf,
        Err(code) => {
            loaded.messages.push(failed(code));
            return loaded;
        }
    };
    // kmod_module_get_symbols: no exports at all (ENOENT) is not an error. The other errors
    // were the ELF header's, above.
    loaded.exports = elf
        .symbols()
        .unwrap_or_default()
        .into_iter()
        .map(|e| Symbol {
            name: e.name.to_vec(),
            crc: e.crc,
        })
        .collect();
    for entry in elf.strings(b".modinfo").unwrap_or_default() {
        let (key, value) = match entry.iter().position(|&b| b == b'=') {
            Some(eq) => (&entry[..eq], &entry[eq + 1..]),
            None => (entry, &b""[..]),
        };
        if key == b"alias" || key == b"softdep" {
            loaded.modinfo.push((key.to_vec(), value.to_vec()));
        }
    }
    loaded.needs = elf
        .dependency_symbols()
        .unwrap_or_default()
        .into_iter()
        .map(|d| Need {
            name: d.name.to_vec(),
            crc: d.crc,
            weak: d.bind == Bind::Weak,
        })
        .collect();
    loaded
}

/// A module found by the search, before it is read.
struct Found {
    name: Vec<u8>,
    path: Vec<u8>,
    relpath: Option<Vec<u8>>,
    uncrelpath: Option<Vec<u8>>,
    meta: Option<fs::Metadata>,
}

/// The settings of one run.
struct Settings {
    dirname: Vec<u8>,
    config: DepmodConfig,
}

impl Settings {
    /// kmod's `depmod_module_is_higher_priority`: does the module already found at `old` win
    /// over `new` (both paths of a module whose name is `modname_len` bytes)?
    fn existing_wins(&self, old: &[u8], new: &[u8], modname_len: usize) -> bool {
        let dirname = &self.dirname[..];
        // Each path up to the end of the module name, as kmod measures it.
        let dir_len = |p: &[u8]| p.iter().rposition(|&b| b == b'/').map_or(0, |s| s + 1);
        let new_len = dir_len(new) + modname_len;
        let old_len = dir_len(old) + modname_len;
        // That much of the path, relative to the module directory, when it is inside it.
        let relative = |p: &'_ [u8], len: usize| -> Option<Vec<u8>> {
            if !p.starts_with(dirname) {
                return None;
            }
            let start = dirname.len() + 1;
            Some(
                p.get(start..len.max(start).min(p.len()))
                    .unwrap_or_default()
                    .to_vec(),
            )
        };
        let new_rel = relative(new, new_len).unwrap_or_default();
        let old_rel = relative(old, old_len).unwrap_or_default();

        for ov in &self.config.overrides {
            if new_rel == *ov {
                return false;
            }
            if old_rel == *ov {
                return true;
            }
        }
        let starts_with_dir = |path: &[u8], len: usize, dir: &[u8]| {
            len > dir.len() && path.get(dir.len()) == Some(&b'/') && path.starts_with(dir)
        };
        let (mut builtin, mut old_prio, mut new_prio) = (-1i64, -1i64, -1i64);
        let mut i = 0i64;
        for search in &self.config.searches {
            match search {
                Search::BuiltIn => builtin = i,
                Search::External => {
                    for ext in &self.config.externals {
                        if starts_with_dir(new, new_len, ext) {
                            new_prio = i;
                        }
                        if starts_with_dir(old, old_len, ext) {
                            old_prio = i;
                        }
                        i += 1;
                    }
                }
                Search::Path(dir) => {
                    let rel_match = |rel: &[u8]| {
                        rel.len() > dir.len()
                            && rel.get(dir.len()) == Some(&b'/')
                            && rel.starts_with(dir)
                    };
                    // kmod checks the old path only when the new one does not match.
                    if rel_match(&new_rel) {
                        new_prio = i;
                    } else if rel_match(&old_rel) {
                        old_prio = i;
                    }
                }
            }
            i += 1;
        }
        if new_prio < 0 {
            new_prio = builtin;
        }
        if old_prio < 0 {
            old_prio = builtin;
        }
        new_prio <= old_prio
    }
}

/// The module search: kmod's `depmod_modules_search*`, in `readdir` order.
struct Scan<'s> {
    settings: &'s Settings,
    modules: Vec<Option<Found>>,
    by_name: HashMap<Vec<u8>, usize>,
}

impl Tool<'_> {
    fn depmod(&mut self, args: &[OsString]) -> Result<(), Exit> {
        let mut all = false;
        let mut quick = false;
        let mut root: Option<Vec<u8>> = None;
        let mut config_paths: Vec<Vec<u8>> = Vec::new();
        let mut symvers: Option<Vec<u8>> = None;
        let mut system_map: Option<Vec<u8>> = None;
        let mut options = Options::default();
        let mut to_stdout = false;
        let mut verbose = LOG_WARNING;

        let mut getopt = Getopt::new(args, SHORT_OPTIONS, LONG_OPTIONS);
        for found in getopt.by_ref() {
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    let _ = self.log.err.write_all(e.message());
                    return Err(FAILED);
                }
            };
            let arg = found.arg_bytes();
            let short = u8::try_from(found.val).unwrap_or(0);
            match short {
                b'a' => all = true,
                b'A' => quick = true,
                b'b' => root = Some(absolute(arg)),
                b'C' => config_paths.push(arg.to_vec()),
                b'E' => {
                    symvers = Some(arg.to_vec());
                    options.check_symvers = true;
                }
                b'F' => system_map = Some(arg.to_vec()),
                b'e' => options.print_unknown = true,
                b'v' => verbose = verbose.saturating_add(1),
                b'n' => to_stdout = true,
                b'P' => {
                    if arg.len() != 1 {
                        return Err(self.log.fatal("-P only takes a single char\n"));
                    }
                    options.symbol_prefix = arg[0];
                }
                b'w' => options.warn_dups = true,
                b'u' | b'q' | b'r' | b'm' => {
                    let message = match found.long_index {
                        Some(i) if i > 0 => {
                            format!("Ignored deprecated option --{}\n", LONG_OPTIONS[i].name)
                        }
                        _ => format!("Ignored deprecated option -{}\n", short as char),
                    };
                    self.log.warn(message);
                }
                b'h' => {
                    self.help();
                    return Ok(());
                }
                b'V' => {
                    let _ = self.out.write_all(crate::tool_log::VERSION_TEXT.as_bytes());
                    return Ok(());
                }
                _ => return Err(FAILED),
            }
        }
        let operands: Vec<Vec<u8>> = getopt
            .operands()
            .iter()
            .map(|o| o.as_bytes().to_vec())
            .collect();

        let (kversion, files) = match operands.split_first() {
            Some((version, files)) => {
                if !is_version_number(version) {
                    self.log
                        .error(format!("Bad version passed {}\n", lossy(version)));
                    return Err(FAILED);
                }
                (version.clone(), files.to_vec())
            }
            None => match self.kernel.release() {
                Ok(release) => (release.into_bytes(), Vec::new()),
                Err(e) => {
                    return Err(self
                        .log
                        .fatal(format!("uname() failed: {}\n", strerror(&e))))
                }
            },
        };
        let mut dirname = root.unwrap_or_default();
        dirname.extend_from_slice(b"/lib/modules/");
        dirname.extend_from_slice(&kversion);
        if files.is_empty() {
            all = true;
        }

        if quick {
            if to_stdout {
                return Ok(());
            }
            if self.up_to_date(&dirname) {
                return Ok(());
            }
            all = true;
        }
        self.log.log.priority = i32::from(verbose);
        options.verbose = verbose > LOG_WARNING;
        self.context = true;
        self.log.info(format!(
            "../libkmod/libkmod.c:367 kmod_set_log_fn() custom logging function \
             {LOG_FN_ADDRESS:#x} registered\n"
        ));

        let kernel_symbols = if let Some(file) = &symvers {
            Some(self.kernel_symbols(file, parse_symvers, options.symbol_prefix)?)
        } else if let Some(file) = &system_map {
            Some(self.kernel_symbols(file, parse_system_map, options.symbol_prefix)?)
        } else {
            if options.print_unknown {
                self.log.warn("-e needs -E or -F\n");
                options.print_unknown = false;
            }
            None
        };

        let mut settings = Settings {
            dirname: dirname.clone(),
            config: DepmodConfig::default(),
        };
        let mut search;
        if all {
            self.load_config(&mut settings.config, &config_paths, &kversion);
            search = Scan {
                settings: &settings,
                modules: Vec::new(),
                by_name: HashMap::new(),
            };
            if let Err(e) = search.path(&dirname, &mut self.log) {
                return Err(self
                    .log
                    .fatal(format!("could not search modules: {}\n", strerror(&e))));
            }
            for external in settings.config.externals.clone() {
                let _ = search.path(&external, &mut self.log);
            }
        } else {
            search = Scan {
                settings: &settings,
                modules: Vec::new(),
                by_name: HashMap::new(),
            };
            for path in &files {
                self.add_file(&mut search, path)?;
            }
        }
        let found: Vec<Found> = search.modules.into_iter().flatten().collect();

        // The module order: kmod's table order, then modules.order.
        let keys: Vec<(&[u8], Option<&[u8]>)> = found
            .iter()
            .map(|f| (&f.name[..], f.uncrelpath.as_deref()))
            .collect();
        let order_contents = self.read_in_dir(&dirname, "modules.order");
        let order_path = format!("{}/modules.order", lossy(&dirname));
        let (order, diagnostics) = module_order(&keys, order_contents.as_deref(), &order_path);
        for d in &diagnostics {
            self.log.diag(d);
        }
        let mut slots: Vec<Option<Found>> = found.into_iter().map(Some).collect();
        let found: Vec<Found> = order.iter().filter_map(|&i| slots[i].take()).collect();

        // Read every module (on every core, through the cache).
        let loaded = load_all(&dirname, &found);
        let mut modules = Vec::with_capacity(found.len());
        for (found, loaded) in found.into_iter().zip(loaded) {
            for d in &loaded.messages {
                self.log.diag(d);
            }
            modules.push(Module {
                name: found.name,
                path: found.path,
                relpath: found.relpath,
                exports: loaded.exports,
                needs: loaded.needs,
                modinfo: loaded.modinfo,
            });
        }

        let resolved = match resolve(modules, kernel_symbols, &options) {
            Ok(resolved) => resolved,
            Err(ResolveError::Cycles(diagnostics)) => {
                for d in &diagnostics {
                    self.log.diag(d);
                }
                return Err(FAILED);
            }
            Err(ResolveError::CycleReportAborted(diagnostics)) => {
                for d in &diagnostics {
                    self.log.diag(d);
                }
                let _ = writeln!(
                    self.log.err,
                    "{}: ../tools/depmod.c:1851: depmod_report_cycles_from_root: Assertion \
                     `is < stack_size' failed.",
                    self.log.log.name
                );
                // `main` aborts as kmod does (`run` returns, for callers in the same process).
                return Err(Exit {
                    code: ABORTED,
                    fatal: true,
                });
            }
        };
        for line in &resolved.verbose_lines {
            let _ = self.out.write_all(line.as_bytes());
        }
        for d in &resolved.diagnostics {
            self.log.diag(d);
        }
        self.output(&resolved, &dirname, &options, to_stdout)
    }

    fn help(&mut self) {
        let _ = write!(
            self.out,
            "Usage:\n\
             \t{} -[aA] [options] [forced_version]\n\
             \n\
             If no arguments (except options) are given, \"depmod -a\" is assumed\n\
             \n\
             depmod will output a dependency list suitable for the modprobe utility.\n\
             \n\
             Options:\n\
             \t-a, --all            Probe all modules\n\
             \t-A, --quick          Only does the work if there's a new module\n\
             \t-e, --errsyms        Report not supplied symbols\n\
             \t-n, --show           Write the dependency file on stdout only\n\
             \t-P, --symbol-prefix  Architecture symbol prefix\n\
             \t-C, --config=PATH    Read configuration from PATH\n\
             \t-v, --verbose        Enable verbose mode\n\
             \t-w, --warn           Warn on duplicates\n\
             \t-V, --version        show version\n\
             \t-h, --help           show this help\n\
             \n\
             The following options are useful for people managing distributions:\n\
             \t-b, --basedir=DIR    Use an image of a module tree.\n\
             \t-F, --filesyms=FILE  Use the file instead of the\n\
             \t                     current kernel symbols.\n\
             \t-E, --symvers=FILE   Use Module.symvers file to check\n\
             \t                     symbol versions.\n",
            self.log.log.name
        );
    }

    fn kernel_symbols(
        &mut self,
        file: &[u8],
        parse: SymbolFileParser,
        prefix: u8,
    ) -> Result<Vec<Symbol>, Exit> {
        match fs::read(os(file)) {
            Ok(contents) => {
                let (symbols, diagnostics) = parse(&contents, &lossy(file), prefix);
                for d in &diagnostics {
                    self.log.diag(d);
                }
                Ok(symbols)
            }
            Err(e) => Err(self.log.fatal(format!(
                "could not load {}: {}\n",
                lossy(file),
                strerror(&e)
            ))),
        }
    }

    /// kmod's `dfdopen` of a file of the module directory for reading: a warning when it
    /// cannot be opened.
    fn read_in_dir(&mut self, dirname: &[u8], name: &str) -> Option<Vec<u8>> {
        if let Err(e) = fs::File::open(os(dirname)) {
            self.log.warn(format!(
                "could not open directory {}: {}\n",
                lossy(dirname),
                strerror(&e)
            ));
            return None;
        }
        let mut path = dirname.to_vec();
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
        match fs::read(os(&path)) {
            Ok(contents) => Some(contents),
            Err(e) => {
                self.log.warn(format!(
                    "could not open {name} at {}: {}\n",
                    lossy(dirname),
                    strerror(&e)
                ));
                None
            }
        }
    }

    /// kmod's `cfg_load`: the `.conf` files of the configuration directories (or of `-C`
    /// paths), each name once (the first directory wins), in name order.
    fn load_config(&mut self, config: &mut DepmodConfig, paths: &[Vec<u8>], kversion: &[u8]) {
        let defaults: Vec<Vec<u8>> = CONFIG_DIRS.iter().map(|d| d.as_bytes().to_vec()).collect();
        let paths = if paths.is_empty() {
            &defaults[..]
        } else {
            paths
        };
        // (name, path), sorted by name.
        let mut files: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let insert = |files: &mut Vec<(Vec<u8>, Vec<u8>)>, name: &[u8], path: Vec<u8>| match files
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
        {
            Ok(_) => {}
            Err(at) => files.insert(at, (name.to_vec(), path)),
        };
        for dir in paths {
            let Ok(meta) = fs::metadata(os(dir)) else {
                continue;
            };
            if !meta.is_dir() {
                let name = dir.rsplit(|&b| b == b'/').next().unwrap_or_default();
                insert(&mut files, name, dir.clone());
                continue;
            }
            let entries = match fs::read_dir(os(dir)) {
                Ok(entries) => entries,
                Err(e) => {
                    self.log
                        .error(format!("files list {}: {}\n", lossy(dir), strerror(&e)));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.as_bytes();
                if name.first() == Some(&b'.') {
                    continue;
                }
                if name.len() < 6 || !name.ends_with(b".conf") {
                    self.log.info(format!(
                        "All cfg files need .conf: {}/{}\n",
                        lossy(dir),
                        lossy(name)
                    ));
                    continue;
                }
                let mut path = dir.clone();
                path.push(b'/');
                path.extend_from_slice(name);
                if fs::metadata(os(&path)).is_ok_and(|m| m.is_dir()) {
                    self.log.error(format!(
                        "Directories inside directories are not supported: {}/{}\n",
                        lossy(dir),
                        lossy(name)
                    ));
                    continue;
                }
                insert(&mut files, name, path);
            }
        }
        for (_, path) in files {
            match fs::read(os(&path)) {
                Ok(contents) => {
                    let mut diagnostics = Vec::new();
                    config.parse(&lossy(&path), &contents, kversion, &mut diagnostics);
                    for d in &diagnostics {
                        self.log.diag(d);
                    }
                }
                Err(e) => {
                    self.log
                        .error(format!("file parse {}: {}\n", lossy(&path), strerror(&e)))
                }
            }
        }
        config.finish();
    }

    /// A module given on the command line.
    fn add_file(&mut self, search: &mut Scan<'_>, path: &[u8]) -> Result<(), Exit> {
        if path.first() != Some(&b'/') {
            return Err(self
                .log
                .fatal(format!("{}: not absolute path.\n", lossy(path))));
        }
        let meta = match fs::metadata(os(path)) {
            Ok(meta) => meta,
            Err(e) => {
                return Err(self.log.fatal(format!(
                    "could not create module {}: {}\n",
                    lossy(path),
                    strerror(&e)
                )))
            }
        };
        let Some(name) = path_to_modname(path) else {
            return Err(self.log.fatal(format!(
                "could not create module {}: {}\n",
                lossy(path),
                kmodlab_sys::strerror(ENOENT)
            )));
        };
        if let Some(&i) = search.by_name.get(&name) {
            let old = search.modules[i]
                .as_ref()
                .map(|f| f.path.clone())
                .unwrap_or_default();
            if old == path {
                self.log.error(format!(
                    "hash_add_unique {}: {}\n",
                    lossy(&name),
                    kmodlab_sys::strerror(EEXIST)
                ));
                return Err(self.log.fatal(format!(
                    "could not add module {}: {}\n",
                    lossy(path),
                    kmodlab_sys::strerror(EEXIST)
                )));
            }
            // libkmod's own message, in the format of Debian's build (with its source line).
            self.log.error(format!(
                "../libkmod/libkmod-module.c:428 kmod_module_new_from_path() kmod_module '{}' \
                 already exists with different path: new-path='{}' old-path='{}'\n",
                lossy(&name),
                lossy(path),
                lossy(&old)
            ));
            return Err(self.log.fatal(format!(
                "could not create module {}: {}\n",
                lossy(path),
                kmodlab_sys::strerror(EEXIST)
            )));
        }
        search.add(name, path.to_vec(), Some(meta));
        Ok(())
    }

    /// kmod's `depfile_up_to_date`: no module is newer than `modules.dep`.
    fn up_to_date(&mut self, dirname: &[u8]) -> bool {
        if let Err(e) = fs::read_dir(os(dirname)) {
            self.log.error(format!(
                "could not open directory {}: {}\n",
                lossy(dirname),
                strerror(&e)
            ));
            return false;
        }
        let mut dep = dirname.to_vec();
        dep.extend_from_slice(b"/modules.dep");
        let mtime = match fs::metadata(os(&dep)) {
            Ok(meta) => meta.mtime(),
            Err(e) => {
                self.log.error(format!(
                    "could not fstatat({}, modules.dep): {}\n",
                    lossy(dirname),
                    strerror(&e)
                ));
                return false;
            }
        };
        let mut base = dirname.to_vec();
        base.push(b'/');
        self.up_to_date_dir(&base, mtime, 3)
    }

    fn up_to_date_dir(&mut self, base: &[u8], mtime: i64, fd: u32) -> bool {
        let Ok(entries) = fs::read_dir(os(base)) else {
            return true;
        };
        let mut result = true;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name == b"build" || name == b"source" {
                continue;
            }
            let mut path = base.to_vec();
            path.extend_from_slice(name);
            let meta = match fs::metadata(os(&path)) {
                Ok(meta) => meta,
                Err(e) => {
                    self.log.error(format!(
                        "fstatat({fd}, {}): {}\n",
                        lossy(name),
                        strerror(&e)
                    ));
                    continue;
                }
            };
            if meta.is_dir() {
                if let Err(e) = fs::read_dir(os(&path)) {
                    self.log.error(format!(
                        "openat({fd}, {}, O_RDONLY): {}\n",
                        lossy(name),
                        strerror(&e)
                    ));
                    continue;
                }
                path.push(b'/');
                result = self.up_to_date_dir(&path, mtime, fd + 1);
            } else if meta.is_file() {
                if !has_module_extension(name) {
                    continue;
                }
                result = meta.mtime() <= mtime;
            } else {
                self.log.error(format!(
                    "unsupported file type {}: {:o}\n",
                    lossy(&path),
                    meta.mode() & 0o170000
                ));
                continue;
            }
            if !result {
                break;
            }
        }
        result
    }

    fn output(
        &mut self,
        resolved: &Resolved,
        dirname: &[u8],
        options: &Options,
        to_stdout: bool,
    ) -> Result<(), Exit> {
        if to_stdout {
            let _ = self.out.write_all(&resolved.modules_dep());
            let _ = self.out.write_all(&resolved.modules_alias());
            let _ = self.out.write_all(&resolved.modules_softdep());
            let _ = self.out.write_all(&resolved.modules_symbols());
            let (devname, diagnostics) = resolved.modules_devname();
            let _ = self.out.write_all(&devname);
            for d in &diagnostics {
                self.log.diag(d);
            }
            return Ok(());
        }
        if let Err(e) = fs::File::open(os(dirname)) {
            return Err(self.log.fatal(format!(
                "could not open directory {}: {}\n",
                lossy(dirname),
                strerror(&e)
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let suffix = format!(
            "{}.{}.{}",
            std::process::id(),
            now.subsec_micros(),
            now.as_secs()
        );
        let dups = options.warn_dups;
        for name in kmodlab_modindex::depmod::OUTPUT_FILES {
            let contents: Result<Written, NonAsciiError> = match name {
                "modules.dep" => Ok((resolved.modules_dep(), Vec::new())),
                "modules.dep.bin" => resolved.modules_dep_bin(dups),
                "modules.alias" => Ok((resolved.modules_alias(), Vec::new())),
                "modules.alias.bin" => resolved.modules_alias_bin(dups),
                "modules.softdep" => Ok((resolved.modules_softdep(), Vec::new())),
                "modules.symbols" => Ok((resolved.modules_symbols(), Vec::new())),
                "modules.symbols.bin" => resolved.modules_symbols_bin(dups),
                "modules.builtin.bin" => match self.read_in_dir(dirname, "modules.builtin") {
                    Some(contents) => modules_builtin_bin(&contents),
                    None => Ok((Vec::new(), Vec::new())),
                },
                "modules.builtin.alias.bin" => {
                    match self.read_in_dir(dirname, "modules.builtin.modinfo") {
                        Some(contents) => modules_builtin_alias_bin(&contents),
                        None => Ok((Vec::new(), Vec::new())),
                    }
                }
                _ => Ok(resolved.modules_devname()),
            };
            let (bytes, diagnostics) = match contents {
                Ok(written) => written,
                Err(e) => return Err(self.log.fatal(e.to_string())),
            };
            for d in &diagnostics {
                self.log.diag(d);
            }
            let tmp_name = format!("{name}.{suffix}");
            let mut tmp = dirname.to_vec();
            tmp.push(b'/');
            tmp.extend_from_slice(tmp_name.as_bytes());
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(os(&tmp));
            let mut file = match file {
                Ok(file) => file,
                Err(e) => {
                    self.log.error(format!(
                        "openat({}, {tmp_name}, 301, 644): {}\n",
                        lossy(dirname),
                        strerror(&e)
                    ));
                    continue;
                }
            };
            let written = file.write_all(&bytes);
            drop(file);
            let mut target = dirname.to_vec();
            target.push(b'/');
            target.extend_from_slice(name.as_bytes());
            if let Err(e) = fs::rename(os(&tmp), os(&target)) {
                return Err(self.log.fatal(format!(
                    "renameat({d}, {tmp_name}, {d}, {name}): {}\n",
                    strerror(&e),
                    d = lossy(dirname)
                )));
            }
            if written.is_err() {
                self.log.error(format!(
                    "Could not create index '{name}'. Output is truncated: {}\n",
                    kmodlab_sys::strerror(ENOSPC)
                ));
                return Err(FAILED);
            }
        }
        Ok(())
    }
}

impl Scan<'_> {
    /// kmod's `depmod_modules_search_path`.
    fn path(&mut self, dir: &[u8], log: &mut Log<'_>) -> io::Result<()> {
        let entries = match fs::read_dir(os(dir)) {
            Ok(entries) => entries,
            Err(e) => {
                log.error(format!(
                    "could not open directory {}: {}\n",
                    lossy(dir),
                    strerror(&e)
                ));
                return Err(e);
            }
        };
        let mut base = dir.to_vec();
        base.push(b'/');
        self.dir(entries, &base, 3, log);
        Ok(())
    }

    fn excluded(&self, name: &[u8]) -> bool {
        name == b"."
            || name == b".."
            || name == b"build"
            || name == b"source"
            || self.settings.config.excludes.iter().any(|e| e == name)
    }

    /// kmod's `depmod_modules_search_dir`; `fd` is the descriptor number kmod's messages would
    /// show for this directory.
    fn dir(&mut self, entries: fs::ReadDir, base: &[u8], fd: u32, log: &mut Log<'_>) {
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let name = name.as_bytes();
            if self.excluded(name) {
                continue;
            }
            let mut path = base.to_vec();
            path.extend_from_slice(name);
            let kind = entry.file_type().ok();
            let is_dir = match kind {
                Some(t) if t.is_file() => false,
                Some(t) if t.is_dir() => true,
                _ => match fs::metadata(os(&path)) {
                    Err(e) => {
                        log.error(format!(
                            "fstatat({fd}, {}): {}\n",
                            lossy(name),
                            strerror(&e)
                        ));
                        continue;
                    }
                    Ok(meta) if meta.is_file() => false,
                    Ok(meta) if meta.is_dir() => true,
                    Ok(meta) => {
                        log.error(format!(
                            "unsupported file type {}: {:o}\n",
                            lossy(&path),
                            meta.mode() & 0o170000
                        ));
                        continue;
                    }
                },
            };
            if is_dir {
                match fs::read_dir(os(&path)) {
                    Ok(sub) => {
                        path.push(b'/');
                        self.dir(sub, &path, fd + 1, log);
                    }
                    Err(e) => {
                        log.error(format!(
                            "openat({fd}, {}, O_RDONLY): {}\n",
                            lossy(name),
                            strerror(&e)
                        ));
                    }
                }
            } else if let Err(e) = self.file(name, &path, log) {
                log.error(format!("failed {}: {}\n", lossy(&path), strerror(&e)));
            }
        }
    }

    /// kmod's `depmod_modules_search_file`.
    fn file(&mut self, name: &[u8], path: &[u8], log: &mut Log<'_>) -> io::Result<()> {
        if !has_module_extension(name) {
            return Ok(());
        }
        let modname = path_to_modname(path).unwrap_or_default();
        if let Some(&i) = self.by_name.get(&modname) {
            let old = self.modules[i]
                .as_ref()
                .map(|f| &f.path[..])
                .unwrap_or_default();
            if self.settings.existing_wins(old, path, modname.len()) {
                return Ok(());
            }
            self.modules[i] = None;
            self.by_name.remove(&modname);
        }
        let meta = match fs::metadata(os(path)) {
            Ok(meta) => meta,
            Err(e) => {
                log.error(format!(
                    "could not create module {}: {}\n",
                    lossy(path),
                    strerror(&e)
                ));
                return Err(e);
            }
        };
        self.add(modname, path.to_vec(), Some(meta));
        Ok(())
    }

    /// kmod's `depmod_module_add`.
    fn add(&mut self, name: Vec<u8>, path: Vec<u8>, meta: Option<fs::Metadata>) {
        let dirname = &self.settings.dirname;
        let relpath = (path.starts_with(dirname) && path.get(dirname.len()) == Some(&b'/'))
            .then(|| path[dirname.len() + 1..].to_vec());
        // kmod's `uncrelpath`, matched against modules.order: the relative path cut after
        // the module name's length of file name plus 3 (`foo.ko.xz` gives `foo.ko`).
        let uncrelpath = relpath.as_ref().map(|rel| {
            let dir = rel.iter().rposition(|&b| b == b'/').map_or(0, |s| s + 1);
            rel[..(dir + name.len() + 3).min(rel.len())].to_vec()
        });
        self.by_name.insert(name.clone(), self.modules.len());
        self.modules.push(Some(Found {
            name,
            path,
            relpath,
            uncrelpath,
            meta,
        }));
    }
}

/// Where the cache file for the module directory `dirname` (`BASEDIR/lib/modules/VERSION`) is,
/// as the environment sets it (see [`cache`]); `None` when the cache is off.
pub fn cache_file(dirname: &[u8]) -> Option<std::path::PathBuf> {
    cache::location(dirname)
}

/// Runs depmod's cache decoder on `bytes`, taken as the entries of a cache file (what follows
/// its magic and its MAC; the MAC is not checked here), for the fuzz target. When they decode,
/// the entries are encoded and decoded again, which must give the same entries (a panic says
/// they did not). Returns the number of entries; `None` when `bytes` are refused.
pub fn fuzz_cache_decoder(bytes: &[u8]) -> Option<usize> {
    cache::check_decoder(bytes)
}

/// Reads every module, in parallel, through the cache; results in the order of `found`.
fn load_all(dirname: &[u8], found: &[Found]) -> Vec<Loaded> {
    let cache = cache::Cache::open(dirname);
    let mut cached = cache.as_ref().map(cache::Cache::load).unwrap_or_default();
    let identities: Vec<Option<cache::Identity>> = found
        .iter()
        .map(|f| f.meta.as_ref().map(cache::Identity::of))
        .collect();
    let mut results: Vec<Option<Loaded>> = found
        .iter()
        .zip(&identities)
        .map(|(f, id)| match (cached.remove(&f.path), id) {
            (Some((cached_id, loaded)), Some(id)) if cached_id == *id => Some(loaded),
            _ => None,
        })
        .collect();
    // The rest, largest first so that the cores finish together.
    let mut work: Vec<usize> = (0..found.len()).filter(|&i| results[i].is_none()).collect();
    let stale = !work.is_empty() || !cached.is_empty();
    work.sort_by_key(|&i| std::cmp::Reverse(found[i].meta.as_ref().map_or(0, |m| m.len())));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len().max(1));
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, Loaded)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = work.get(at) else { break };
                        mine.push((i, load_module(&found[i].path)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    for (i, loaded) in done.into_iter().flatten() {
        results[i] = Some(loaded);
    }
    let results: Vec<Loaded> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| load_module(&found[i].path)))
        .collect();
    if stale {
        if let Some(cache) = cache {
            let entries: Vec<(&[u8], cache::Identity, &Loaded)> = found
                .iter()
                .zip(&identities)
                .zip(&results)
                .filter_map(|((f, id), loaded)| Some((&f.path[..], (*id)?, loaded)))
                .collect();
            cache.save(&entries);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers() {
        assert!(is_version_number(b"6.12.95+deb12-amd64"));
        assert!(is_version_number(b"6.1"));
        assert!(is_version_number(b" +6. 1x"));
        assert!(!is_version_number(b"6"));
        assert!(!is_version_number(b"6."));
        assert!(!is_version_number(b"v6.1"));
    }
}
