//! Finding modules the way libkmod does for a context made with no configuration files (as
//! `modinfo` makes it): by file path, by module name through `modules.dep.bin` and
//! `modules.builtin.bin`, and by alias through `modules.symbols.bin`, `modules.alias.bin` and
//! `modules.builtin.alias.bin`, in libkmod's order; and the built-in modules' information from
//! `modules.builtin.modinfo`.
//!
//! Only the `.bin` indexes are read, as libkmod reads only them. Errors are errno values, as
//! libkmod returns them, so that messages can be worded the same.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;

use crate::indexes::{Indexes, Which};

/// `PATH_MAX`: libkmod builds names and paths in buffers of this size.
pub const PATH_MAX: usize = 4096;

/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `ENOENT`.
pub const ENOENT: i32 = 2;
/// `ENOSYS`: libkmod's "not found in modules.builtin.modinfo".
pub const ENOSYS: i32 = 38;
/// `ENAMETOOLONG`.
pub const ENAMETOOLONG: i32 = 36;

/// libkmod's log priority for errors (`LOG_ERR`).
const LOG_ERR: i32 = 3;

/// Where in libkmod (Debian's `30+20221128` sources) a message comes from: file, line,
/// function.
type LogSite = (&'static str, u32, &'static str);

const DEPLINE_JOIN: LogSite = ("libkmod-module.c", 184, "kmod_module_parse_depline");
const DEPLINE_DEP: LogSite = ("libkmod-module.c", 191, "kmod_module_parse_depline");
const BUILTIN_NEXT: LogSite = ("libkmod-builtin.c", 193, "kmod_builtin_iter_next");

/// The C library's text for an errno value: `No such file or directory`.
pub use kmodlab_sys::strerror;

/// The errno of an I/O error (`EIO` when it has none).
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(5)
}

/// The module name of a file or argument: up to the first `.`, dashes made underscores
/// (libkmod's `modname_normalize()`), at most `PATH_MAX - 1` bytes.
pub fn modname_normalize(name: &[u8]) -> Vec<u8> {
    name.iter()
        .take(PATH_MAX - 1)
        .take_while(|&&c| c != b'.')
        .map(|&c| if c == b'-' { b'_' } else { c })
        .collect()
}

/// An alias with dashes made underscores outside bracket expressions (libkmod's
/// `alias_normalize()`); `None` for an unbalanced `]` or `[`.
pub fn alias_normalize(alias: &[u8]) -> Option<Vec<u8>> {
    let alias = alias.get(..alias.len().min(PATH_MAX - 1)).unwrap_or(alias);
    let mut out = Vec::with_capacity(alias.len());
    let mut i = 0;
    while let Some(&c) = alias.get(i) {
        match c {
            b'-' => out.push(b'_'),
            b']' => return None,
            b'[' => {
                let close = alias.get(i..)?.iter().position(|&b| b == b']')?;
                out.extend_from_slice(alias.get(i..=i + close)?);
                i += close;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// The last component of a path (GNU `basename()`: empty for a path ending in `/`).
fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => path.get(slash + 1..).unwrap_or_default(),
        None => path,
    }
}

/// The current directory as glibc's `get_current_dir_name()` gives it: `$PWD` when it names
/// the current directory, else `getcwd()`.
fn current_dir_name() -> Option<Vec<u8>> {
    if let Some(pwd) = std::env::var_os("PWD") {
        if let (Ok(dot), Ok(there)) = (std::fs::metadata("."), std::fs::metadata(&pwd)) {
            if dot.dev() == there.dev() && dot.ino() == there.ino() {
                return Some(pwd.as_bytes().to_vec());
            }
        }
    }
    std::env::current_dir()
        .ok()
        .map(|d| d.as_os_str().as_bytes().to_vec())
}

/// `path` made absolute against the current directory, without normalising it (libkmod's
/// `path_make_absolute_cwd()`).
pub fn make_absolute(path: &[u8]) -> Option<Vec<u8>> {
    if path.first() == Some(&b'/') {
        return Some(path.to_vec());
    }
    let mut out = current_dir_name()?;
    out.push(b'/');
    out.extend_from_slice(path);
    Some(out)
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// A module as libkmod tracks it while one argument is handled.
#[derive(Debug, Clone, Default)]
pub struct Module {
    /// The module name (normalised, except for names that come from an alias index, which
    /// depmod wrote normalised).
    pub name: Vec<u8>,
    /// The file, once known.
    pub path: Option<Vec<u8>>,
    /// Built in: `None` until looked up.
    pub builtin: Option<bool>,
    /// Its `modules.dep` line was read.
    dep_read: bool,
}

/// A module shared between the places that refer to it, as libkmod's pool shares them.
pub type ModuleRef = Rc<RefCell<Module>>;

/// A libkmod context: the module directory and the log priority, with the indexes read on
/// first use and the modules of the argument being handled.
pub struct Context {
    dirname: Vec<u8>,
    log_priority: i32,
    indexes: Indexes,
    pool: RefCell<HashMap<Vec<u8>, ModuleRef>>,
}

impl Context {
    /// A context for the modules in `dirname` (made absolute against the current directory,
    /// like libkmod). `kmod_log` is the value of the `KMOD_LOG` environment variable, which
    /// sets which of libkmod's own messages are shown.
    pub fn new(dirname: &[u8], kmod_log: Option<&[u8]>) -> Context {
        let dirname = make_absolute(dirname).unwrap_or_else(|| dirname.to_vec());
        Context {
            indexes: Indexes::open(&dirname),
            dirname,
            log_priority: kmod_log.map_or(LOG_ERR, log_priority),
            pool: RefCell::new(HashMap::new()),
        }
    }

    /// The module directory, absolute.
    pub fn dirname(&self) -> &[u8] {
        &self.dirname
    }

    /// Forgets the modules of the previous argument (libkmod frees them when their last
    /// reference goes).
    pub fn release_modules(&self) {
        self.pool.borrow_mut().clear();
    }

    /// libkmod's own error messages, shown at priority `LOG_ERR` and up, with the source
    /// location Debian's debug-enabled build prints: `libkmod: ERROR FILE:LINE FUNCTION: ...`.
    fn log_error(&self, err: &mut dyn Write, at: LogSite, message: &[u8]) {
        if self.log_priority >= LOG_ERR {
            let (file, line, function) = at;
            let prefix = format!("libkmod: ERROR ../libkmod/{file}:{line} {function}: ");
            let _ = err.write_all(&[prefix.as_bytes(), message].concat());
        }
    }

    fn pooled(&self, key: Vec<u8>, make: impl FnOnce() -> Module) -> ModuleRef {
        self.pool
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(RefCell::new(make())))
            .clone()
    }

    /// A module by (normalised) name, from the pool or new.
    fn module_by_name(&self, name: &[u8]) -> ModuleRef {
        let name = modname_normalize(name);
        self.pooled(name.clone(), || Module {
            name,
            ..Module::default()
        })
    }

    /// The module of a file (`kmod_module_new_from_path()`): its absolute path and the name
    /// from the file name.
    pub fn module_from_path(&self, path: &[u8]) -> Result<ModuleRef, i32> {
        let absolute = make_absolute(path).ok_or(ENOENT)?;
        std::fs::metadata(os(&absolute)).map_err(|e| errno_of(&e))?;
        let base = basename(path);
        if base.is_empty() {
            return Err(ENOENT);
        }
        let module = self.module_by_name(base);
        {
            let mut m = module.borrow_mut();
            match &m.path {
                None => m.path = Some(absolute),
                Some(old) if *old == absolute => {}
                // libkmod logs "kmod_module 'NAME' already exists with different path";
                // modinfo never gets there, as each argument starts with an empty pool.
                Some(_) => return Err(17),
            }
            m.builtin = Some(false);
        }
        Ok(module)
    }

    /// Modules for an alias or name, as `kmod_module_new_from_lookup()` finds them with no
    /// configuration: a module name from `modules.dep.bin`, a `symbol:` alias from
    /// `modules.symbols.bin`, an alias from `modules.alias.bin`, a built-in module name from
    /// `modules.builtin.bin`, then a built-in module's alias from
    /// `modules.builtin.alias.bin`. The first that finds anything wins. `EINVAL` for an alias
    /// with unbalanced brackets.
    pub fn lookup(&self, alias: &[u8], err: &mut dyn Write) -> Result<Vec<ModuleRef>, i32> {
        let alias = alias_normalize(alias).ok_or(EINVAL)?;
        if let Some(module) = self.lookup_moddep(&alias, err) {
            return Ok(vec![module]);
        }
        if alias.starts_with(b"symbol:") {
            let found = self.lookup_alias_index(Which::Symbols, &alias, false);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let found = self.lookup_alias_index(Which::Alias, &alias, false);
        if !found.is_empty() {
            return Ok(found);
        }
        if let Some(module) = self.lookup_builtin(&alias) {
            return Ok(vec![module]);
        }
        Ok(self.lookup_alias_index(Which::BuiltinAlias, &alias, true))
    }

    /// The module called `name` (`kmod_module_new_from_name_lookup()`): from
    /// `modules.dep.bin`, `modules.builtin.bin` or `modules.builtin.alias.bin`, never through
    /// other aliases.
    pub fn lookup_name(&self, name: &[u8], err: &mut dyn Write) -> Option<ModuleRef> {
        let name = modname_normalize(name);
        self.lookup_moddep(&name, err)
            .or_else(|| self.lookup_builtin(&name))
            .or_else(|| {
                self.lookup_alias_index(Which::BuiltinAlias, &name, true)
                    .into_iter()
                    .next()
            })
    }

    fn lookup_moddep(&self, name: &[u8], err: &mut dyn Write) -> Option<ModuleRef> {
        // Module names have no ':'; libkmod does not even look.
        if name.contains(&b':') {
            return None;
        }
        let line = self.indexes.lookup(Which::Dep, name)?;
        let module = self.module_by_name(name);
        self.parse_depline(&mut module.borrow_mut(), &line, err);
        Some(module)
    }

    fn lookup_builtin(&self, name: &[u8]) -> Option<ModuleRef> {
        self.indexes.lookup(Which::Builtin, name)?;
        let module = self.module_by_name(name);
        module.borrow_mut().builtin = Some(true);
        Some(module)
    }

    fn lookup_alias_index(&self, which: Which, alias: &[u8], builtin: bool) -> Vec<ModuleRef> {
        self.indexes
            .search_wild(which, alias)
            .into_iter()
            .map(|value| {
                let key = [&value[..], b"\\", alias].concat();
                let module = self.pooled(key, || Module {
                    name: value,
                    ..Module::default()
                });
                if builtin {
                    module.borrow_mut().builtin = Some(true);
                }
                module
            })
            .collect()
    }

    /// The module's file (`kmod_module_get_path()`): known already, or from its
    /// `modules.dep.bin` line; `None` for a built-in (or unknown) module.
    pub fn module_path(&self, module: &ModuleRef, err: &mut dyn Write) -> Option<Vec<u8>> {
        let mut m = module.borrow_mut();
        if m.path.is_some() || m.dep_read {
            return m.path.clone();
        }
        let line = self.indexes.lookup(Which::Dep, &m.name)?;
        self.parse_depline(&mut m, &line, err);
        m.path.clone()
    }

    /// Whether the module is built in (`kmod_module_is_builtin()`).
    pub fn is_builtin(&self, module: &ModuleRef) -> bool {
        let mut m = module.borrow_mut();
        if m.builtin.is_none() {
            let found = self.indexes.lookup(Which::Builtin, &m.name).is_some();
            m.builtin = Some(found);
        }
        m.builtin == Some(true)
    }

    /// Reads a `modules.dep` line (`kmod_module_parse_depline()`): the module's path and, for
    /// libkmod's checks, that every dependency's file exists.
    fn parse_depline(&self, m: &mut Module, line: &[u8], err: &mut dyn Write) {
        if m.dep_read {
            return;
        }
        m.dep_read = true;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        if self.dirname.len() + 2 >= PATH_MAX {
            return;
        }
        let join = |path: &[u8]| -> Option<Vec<u8>> {
            if path.first() == Some(&b'/') {
                return Some(path.to_vec());
            }
            if self.dirname.len() + 1 + path.len() + 1 >= PATH_MAX {
                return None;
            }
            Some([&self.dirname[..], b"/", path].concat())
        };
        if m.path.is_none() {
            match join(line.get(..colon).unwrap_or_default()) {
                Some(path) => m.path = Some(path),
                None => return,
            }
        }
        let deps = line.get(colon + 1..).unwrap_or_default();
        for dep in deps
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|d| !d.is_empty())
        {
            let Some(path) = join(dep) else {
                let mut message = b"could not join path '".to_vec();
                message.extend_from_slice(&self.dirname);
                message.extend_from_slice(b"' and '");
                message.extend_from_slice(dep);
                message.extend_from_slice(b"'.\n");
                self.log_error(err, DEPLINE_JOIN, &message);
                m.dep_read = false;
                return;
            };
            let checked = match std::fs::metadata(os(&path)) {
                Ok(_) if basename(&path).is_empty() => Err(ENOENT),
                Ok(_) => Ok(()),
                Err(e) => Err(errno_of(&e)),
            };
            if let Err(errno) = checked {
                // libkmod prints its context's address here.
                let mut message = format!("ctx={:p} path=", self as *const Context).into_bytes();
                message.extend_from_slice(&path);
                message.extend_from_slice(format!(" error={}\n", strerror(errno)).as_bytes());
                self.log_error(err, DEPLINE_DEP, &message);
                m.dep_read = false;
                return;
            }
        }
    }

    /// The `.modinfo` strings of a built-in module, from `modules.builtin.modinfo`
    /// (`kmod_builtin_get_modinfo()`): `ENOSYS` when the module is not in it, the errno of
    /// opening it otherwise.
    pub fn builtin_modinfo(&self, name: &[u8], err: &mut dyn Write) -> Result<Vec<Vec<u8>>, i32> {
        let path = [&self.dirname[..], b"/modules.builtin.modinfo"].concat();
        if path.len() >= PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        let data = std::fs::read(os(&path)).map_err(|e| errno_of(&e))?;
        builtin_modinfo_of(&data, name, &mut |message| {
            self.log_error(err, BUILTIN_NEXT, message)
        })
    }
}

/// libkmod's `KMOD_LOG` parsing: a number, or a name starting with `err`, `info` or `debug`.
fn log_priority(value: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(value);
    let trimmed = text.trim_start();
    let digits_end = trimmed
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(trimmed.len(), |(i, _)| i);
    let rest = &trimmed[digits_end..];
    if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return trimmed[..digits_end].parse().unwrap_or(0);
    }
    if text.starts_with("err") {
        3
    } else if text.starts_with("info") {
        6
    } else if text.starts_with("debug") {
        7
    } else {
        0
    }
}

/// Finds `name`'s strings in the contents of `modules.builtin.modinfo`: NUL-terminated
/// `MODULE.key=value` strings, grouped by module. The first group for `name` gives its
/// strings without the `MODULE.` prefix. A string without a `.` ends the walk (libkmod logs
/// it); an unterminated last string is ignored.
fn builtin_modinfo_of(
    data: &[u8],
    name: &[u8],
    log: &mut dyn FnMut(&[u8]),
) -> Result<Vec<Vec<u8>>, i32> {
    let mut strings = Vec::new();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|&b| b == 0) {
        strings.push(rest.get(..end).unwrap_or_default());
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let mut i = 0;
    while i < strings.len() {
        let module_of = |s: &[u8]| {
            s.iter()
                .position(|&b| b == b'.')
                .map(|dot| s[..dot].to_vec())
        };
        let Some(module) = module_of(strings[i]) else {
            log(b"kmod_builtin_iter_next: unexpected string without modname prefix\n");
            break;
        };
        let mut end = i;
        while end < strings.len() && module_of(strings[end]).as_deref() == Some(&module[..]) {
            end += 1;
        }
        if end < strings.len() && module_of(strings[end]).is_none() {
            log(b"kmod_builtin_iter_next: unexpected string without modname prefix\n");
        }
        if module == name {
            return Ok(strings[i..end]
                .iter()
                .map(|s| s.get(name.len() + 1..).unwrap_or_default().to_vec())
                .collect());
        }
        if end < strings.len() && module_of(strings[end]).is_none() {
            break;
        }
        i = end;
    }
    Err(ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_normalised_like_libkmod() {
        assert_eq!(modname_normalize(b"snd-hda-intel.ko.xz"), b"snd_hda_intel");
        assert_eq!(modname_normalize(b"ext4"), b"ext4");
        assert_eq!(alias_normalize(b"fs-ext4").unwrap(), b"fs_ext4");
        assert_eq!(alias_normalize(b"a-[0-9]-b").unwrap(), b"a_[0-9]_b");
        assert_eq!(alias_normalize(b"foo]"), None);
        assert_eq!(alias_normalize(b"foo[1"), None);
        assert_eq!(basename(b"/a/b.ko"), b"b.ko");
        assert_eq!(basename(b"b.ko"), b"b.ko");
        assert_eq!(basename(b"a/"), b"");
    }

    #[test]
    fn kmod_log_values() {
        assert_eq!(log_priority(b"3"), 3);
        assert_eq!(log_priority(b"0"), 0);
        assert_eq!(log_priority(b"err"), 3);
        assert_eq!(log_priority(b"info"), 6);
        assert_eq!(log_priority(b"debug"), 7);
        assert_eq!(log_priority(b"nonsense"), 0);
    }

    #[test]
    fn builtin_modinfo_groups() {
        let data = b"a.license=GPL\0a.file=x\0bb.parm=p:d\0a.late=1\0";
        let mut logged = Vec::new();
        let mut log = |m: &[u8]| logged.push(m.to_vec());
        assert_eq!(
            builtin_modinfo_of(data, b"a", &mut log).unwrap(),
            [b"license=GPL".to_vec(), b"file=x".to_vec()]
        );
        assert_eq!(
            builtin_modinfo_of(data, b"bb", &mut log).unwrap(),
            [b"parm=p:d".to_vec()]
        );
        assert_eq!(builtin_modinfo_of(data, b"c", &mut log), Err(ENOSYS));
        let bad = b"a.x=1\0nodot\0b.y=2\0";
        assert_eq!(builtin_modinfo_of(bad, b"b", &mut log), Err(ENOSYS));
        assert_eq!(
            logged,
            [b"kmod_builtin_iter_next: unexpected string without modname prefix\n".to_vec()]
        );
        assert_eq!(strerror(2), "No such file or directory");
    }
}
