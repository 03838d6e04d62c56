//! The part of libkmod 30 the tools stand on, rebuilt: a context (`struct kmod_ctx`) holding the
//! configuration, the modules directory's indexes and a pool of module objects, and on it the
//! lookups (`kmod_module_new_from_lookup`), dependency lines, install/remove commands, options,
//! softdeps, the probe list and `kmod_module_probe_insert_module`, module state from sysfs, and
//! insertion and removal.
//!
//! Module objects live in an arena and are named by [`ModId`]. As in libkmod, a module found
//! through an alias is a different object from the same module found by name (its pool key is
//! `name\alias`), which matters for which options apply and for the probe list's bookkeeping.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::indexes::{Indexes, Which};
use crate::kernel_state::{InitState, Kernel, SysfsError};
use crate::modprobe_config::{list_config_files, ModprobeConfig};
use crate::module_insert::{insert_module_file, ForceFlags};
use crate::tool_log::{prio, site, strerror, Log};
use kmodlab_modindex::fnmatch::fnmatch;
use kmodlab_modindex::names::{alias_normalize, basename, modname_normalize};

/// A module object in a [`Context`].
pub type ModId = usize;

/// `kmod_module_get_initstate`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    /// Built into the kernel (per `modules.builtin`).
    Builtin,
    /// Loaded and running.
    Live,
    /// Being loaded.
    Coming,
    /// Being unloaded.
    Going,
}

#[derive(Clone, Debug, Default)]
struct Module {
    name: Vec<u8>,
    alias: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    dep_init: bool,
    deps: Vec<ModId>,
    builtin: Option<bool>,
    visited: bool,
    required: bool,
    ignorecmd: bool,
    options: Option<Option<String>>,
    install_commands: Option<Option<String>>,
    remove_commands: Option<Option<String>>,
}

/// How `kmod_module_probe_insert_module` should behave (`KMOD_PROBE_*`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeFlags {
    /// `KMOD_PROBE_FORCE_VERMAGIC` / `KMOD_PROBE_FORCE_MODVERSION`.
    pub force: ForceFlags,
    /// `KMOD_PROBE_IGNORE_COMMAND`: no install commands, no softdeps.
    pub ignore_command: bool,
    /// `KMOD_PROBE_IGNORE_LOADED`: do not check whether modules are loaded.
    pub ignore_loaded: bool,
    /// `KMOD_PROBE_DRY_RUN`.
    pub dry_run: bool,
    /// `KMOD_PROBE_FAIL_ON_LOADED`.
    pub fail_on_loaded: bool,
    /// `KMOD_PROBE_APPLY_BLACKLIST_ALL`.
    pub apply_blacklist_all: bool,
    /// `KMOD_PROBE_APPLY_BLACKLIST`.
    pub apply_blacklist: bool,
    /// `KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY`.
    pub apply_blacklist_alias_only: bool,
}

/// The positive value `probe_insert` returns when `KMOD_PROBE_APPLY_BLACKLIST_ALL` stopped it.
pub const STOPPED_BLACKLIST_ALL: i32 = 0x10000;
/// The positive value `probe_insert` returns when `KMOD_PROBE_APPLY_BLACKLIST` stopped it.
pub const STOPPED_BLACKLIST: i32 = 0x20000;
/// The positive value `probe_insert` returns when `KMOD_PROBE_APPLY_BLACKLIST_ALIAS_ONLY` stopped it.
pub const STOPPED_BLACKLIST_ALIAS_ONLY: i32 = 0x40000;

/// A libkmod context: configuration, indexes, module pool, the kernel and where messages go.
pub struct Context<'a> {
    /// The modules directory (`/lib/modules/VERSION`), absolute.
    pub dirname: Vec<u8>,
    /// modprobe.d and the kernel command line.
    pub config: ModprobeConfig,
    /// depmod's indexes of `dirname`.
    pub index: Indexes,
    /// The kernel the modules go into.
    pub kernel: &'a Kernel,
    /// The tool's log.
    pub log: Log,
    /// Where messages go (the tool's stderr).
    pub err: &'a mut dyn Write,
    /// Extra environment for install and remove commands (`MODPROBE_OPTIONS`).
    pub command_env: Vec<(String, String)>,
    modules: Vec<Module>,
    pool: HashMap<Vec<u8>, ModId>,
}

/// One of libkmod's lookups: the modules it finds for a normalised name or alias.
type Lookup<'x> = fn(&mut Context<'x>, &[u8]) -> Vec<ModId>;

/// `PATH_MAX`: libkmod builds names and paths in buffers of this size.
pub const PATH_MAX: usize = 4096;

/// A path from bytes.
pub fn os_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// The errno of an I/O error (`EIO` when it has none).
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
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

impl<'a> Context<'a> {
    /// `kmod_new(dirname, config_paths)`: `dirname` defaults to `/lib/modules/$(uname -r)`
    /// (the kernel's `lib_modules` and release);
    /// `config_paths` `None` means kmod's default directories, `Some(&[])` none at all (as the
    /// compat insmod, rmmod and lsmod ask). Configuration messages are printed with libkmod's own
    /// format, as they come before the tool sets up its log.
    pub fn new(
        dirname: Option<&[u8]>,
        config_paths: Option<&[PathBuf]>,
        kernel: &'a Kernel,
        log: Log,
        err: &'a mut dyn Write,
    ) -> Context<'a> {
        let dirname = match dirname {
            Some(d) => make_absolute(d).unwrap_or_else(|| d.to_vec()),
            None => format!(
                "{}/{}",
                kernel.lib_modules.display(),
                kernel.release().unwrap_or_else(|_| String::new())
            )
            .into_bytes(),
        };
        let defaults: Vec<PathBuf> = crate::modprobe_config::DEFAULT_CONFIG_PATHS
            .iter()
            .map(PathBuf::from)
            .collect();
        let paths = config_paths.unwrap_or(&defaults);
        let mut config = ModprobeConfig::default();
        let (files, mut messages) = list_config_files(os_path(&dirname), paths);
        for file in files {
            if let Ok(bytes) = std::fs::read(&file) {
                messages.extend(config.parse_file(&bytes, &file.display().to_string()));
            }
        }
        if let Some(cmdline) = kernel.cmdline() {
            messages.extend(config.parse_kernel_cmdline(&cmdline));
        }
        for m in messages {
            let (site, text) = m.render();
            log.libkmod(err, prio::ERR, site, &text);
        }
        Context {
            index: Indexes::open(&dirname),
            dirname,
            config,
            kernel,
            log,
            err,
            command_env: Vec::new(),
            modules: Vec::new(),
            pool: HashMap::new(),
        }
    }

    /// Prints a libkmod message at `p` from `site`.
    fn kmsg(&mut self, p: i32, site: crate::tool_log::Site, text: impl AsRef<[u8]>) {
        self.log.libkmod(self.err, p, site, text.as_ref());
    }

    /// Forgets every module object (libkmod frees them with their last reference), as modinfo
    /// does between arguments.
    pub fn release_modules(&mut self) {
        self.modules.clear();
        self.pool.clear();
    }

    // ---- module objects -------------------------------------------------------------------

    fn new_module(&mut self, key: Vec<u8>, name: &[u8], alias: Option<&[u8]>) -> ModId {
        if let Some(&id) = self.pool.get(&key) {
            return id;
        }
        let id = self.modules.len();
        self.modules.push(Module {
            name: name.to_vec(),
            alias: alias.map(<[u8]>::to_vec),
            ..Module::default()
        });
        self.pool.insert(key, id);
        id
    }

    /// `kmod_module_new_from_name`: the module called `name` (normalized: dashes become
    /// underscores, and the name ends at the first dot).
    pub fn new_from_name(&mut self, name: impl AsRef<[u8]>) -> ModId {
        let n = modname_normalize(name.as_ref());
        self.new_module(n.clone(), &n, None)
    }

    /// `kmod_module_new_from_alias`: the module `name` as found through `alias`.
    pub fn new_from_alias(&mut self, alias: &[u8], name: &[u8]) -> ModId {
        self.new_module([name, b"\\", alias].concat(), name, Some(alias))
    }

    /// `kmod_module_new_from_path`: the module in file `path` (which must exist); a negative
    /// errno otherwise.
    pub fn new_from_path(&mut self, path: impl AsRef<[u8]>) -> Result<ModId, i32> {
        let path = path.as_ref();
        let abspath = make_absolute(path).ok_or(-libc::ENOENT)?;
        if let Err(e) = std::fs::metadata(os_path(&abspath)) {
            return Err(-errno_of(&e));
        }
        let base = basename(path);
        if base.is_empty() {
            return Err(-libc::ENOENT);
        }
        let name = modname_normalize(base);
        let id = match self.pool.get(&name) {
            Some(&id) => {
                match &self.modules[id].path {
                    None => self.modules[id].path = Some(abspath),
                    Some(p) if *p == abspath => {}
                    Some(p) => {
                        let msg = [
                            b"kmod_module '",
                            &name[..],
                            b"' already exists with different path: new-path='",
                            &abspath,
                            b"' old-path='",
                            p,
                            b"'\n",
                        ]
                        .concat();
                        self.kmsg(
                            prio::ERR,
                            site("libkmod-module.c", 428, "kmod_module_new_from_path"),
                            &msg,
                        );
                        return Err(-libc::EEXIST);
                    }
                }
                id
            }
            None => {
                let id = self.new_module(name.clone(), &name, None);
                self.modules[id].path = Some(abspath);
                id
            }
        };
        self.modules[id].builtin = Some(false);
        Ok(id)
    }

    /// The module's name (normalized), as text.
    pub fn name(&self, id: ModId) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.modules[id].name)
    }

    /// The module's name (normalized), as bytes.
    pub fn name_bytes(&self, id: ModId) -> &[u8] {
        &self.modules[id].name
    }

    /// The alias the module was found through, if any.
    pub fn alias(&self, id: ModId) -> Option<&[u8]> {
        self.modules[id].alias.as_deref()
    }

    // ---- lookups ----------------------------------------------------------------------------

    /// `kmod_module_new_from_lookup`: the modules `given` names, looking in order at modprobe.d
    /// aliases, `modules.dep`, `modules.symbols`, install/remove commands, `modules.alias`,
    /// `modules.builtin` and the built-in modules' aliases; the first place with an answer wins.
    /// An empty list when nothing matched; `-EINVAL` for an alias with unbalanced brackets.
    pub fn lookup(&mut self, given: impl AsRef<[u8]>) -> Result<Vec<ModId>, i32> {
        let alias = alias_normalize(given.as_ref()).ok_or(-libc::EINVAL)?;
        let lookups: [Lookup<'a>; 7] = [
            Context::lookup_config,
            Context::lookup_moddep,
            Context::lookup_symbols,
            Context::lookup_commands,
            Context::lookup_aliases,
            Context::lookup_builtin,
            Context::lookup_builtin_aliases,
        ];
        for f in lookups {
            let list = f(self, &alias);
            if !list.is_empty() {
                return Ok(list);
            }
        }
        Ok(Vec::new())
    }

    /// `kmod_module_new_from_name_lookup`: the module called `name`, from `modules.dep`,
    /// `modules.builtin` or the built-in modules' aliases, never through other aliases.
    pub fn lookup_name(&mut self, name: impl AsRef<[u8]>) -> Option<ModId> {
        let name = modname_normalize(name.as_ref());
        let lookups: [Lookup<'a>; 3] = [
            Context::lookup_moddep,
            Context::lookup_builtin,
            Context::lookup_builtin_aliases,
        ];
        lookups
            .into_iter()
            .find_map(|f| f(self, &name).into_iter().next())
    }

    fn lookup_config(&mut self, name: &[u8]) -> Vec<ModId> {
        let hits: Vec<(String, String)> = self
            .config
            .aliases
            .iter()
            .filter(|a| fnmatch(a.name.as_bytes(), name))
            .map(|a| (a.name.clone(), a.modname.clone()))
            .collect();
        hits.into_iter()
            .map(|(alias, modname)| self.new_from_alias(alias.as_bytes(), modname.as_bytes()))
            .collect()
    }

    fn lookup_moddep(&mut self, name: &[u8]) -> Vec<ModId> {
        // Module names have no ':'; libkmod does not even look.
        if name.contains(&b':') {
            return Vec::new();
        }
        let Some(line) = self.index.lookup(Which::Dep, name) else {
            return Vec::new();
        };
        let id = self.new_from_name(name);
        let _ = self.parse_depline(id, &line);
        vec![id]
    }

    fn alias_bin(&mut self, which: Which, name: &[u8]) -> Vec<ModId> {
        let values = self.index.search_wild(which, name);
        let list: Vec<ModId> = values
            .into_iter()
            .map(|v| self.new_from_alias(name, &v))
            .collect();
        if which == Which::BuiltinAlias {
            for &id in &list {
                self.modules[id].builtin = Some(true);
            }
        }
        list
    }

    fn lookup_symbols(&mut self, name: &[u8]) -> Vec<ModId> {
        if !name.starts_with(b"symbol:") {
            return Vec::new();
        }
        self.alias_bin(Which::Symbols, name)
    }

    fn lookup_aliases(&mut self, name: &[u8]) -> Vec<ModId> {
        self.alias_bin(Which::Alias, name)
    }

    fn lookup_commands(&mut self, name: &[u8]) -> Vec<ModId> {
        let config = &self.config;
        let install = config
            .install_commands
            .iter()
            .find(|c| c.modname.as_bytes() == name);
        let remove = config
            .remove_commands
            .iter()
            .find(|c| c.modname.as_bytes() == name);
        let (modname, command, is_install) = match (install, remove) {
            (Some(c), _) => (c.modname.clone(), c.command.clone(), true),
            (None, Some(c)) => (c.modname.clone(), c.command.clone(), false),
            (None, None) => return Vec::new(),
        };
        let id = self.new_from_name(&modname);
        if is_install {
            self.modules[id].install_commands = Some(Some(command));
        } else {
            self.modules[id].remove_commands = Some(Some(command));
        }
        vec![id]
    }

    fn lookup_builtin(&mut self, name: &[u8]) -> Vec<ModId> {
        if self.index.lookup(Which::Builtin, name).is_none() {
            return Vec::new();
        }
        let id = self.new_from_name(name);
        self.modules[id].builtin = Some(true);
        vec![id]
    }

    fn lookup_builtin_aliases(&mut self, name: &[u8]) -> Vec<ModId> {
        self.alias_bin(Which::BuiltinAlias, name)
    }

    // ---- dependencies and paths ------------------------------------------------------------

    /// `kmod_module_parse_depline`: sets the module's path and dependencies from its
    /// `modules.dep` line (in libkmod's `PATH_MAX` buffers). Dependencies are kept in
    /// libkmod's order: the reverse of the line's.
    fn parse_depline(&mut self, id: ModId, line: &[u8]) -> Result<(), i32> {
        if self.modules[id].dep_init {
            return Ok(());
        }
        self.modules[id].dep_init = true;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Ok(());
        };
        if self.dirname.len() + 2 >= PATH_MAX {
            return Ok(());
        }
        let dirname = self.dirname.clone();
        let join = |path: &[u8]| -> Option<Vec<u8>> {
            if path.first() == Some(&b'/') {
                return Some(path.to_vec());
            }
            if dirname.len() + 1 + path.len() + 1 >= PATH_MAX {
                return None;
            }
            Some([&dirname[..], b"/", path].concat())
        };
        if self.modules[id].path.is_none() {
            match join(&line[..colon]) {
                Some(path) => self.modules[id].path = Some(path),
                None => return Ok(()),
            }
        }
        let mut deps = Vec::new();
        for word in line[colon + 1..]
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty())
        {
            let Some(path) = join(word) else {
                let msg = [
                    b"could not join path '",
                    &dirname[..],
                    b"' and '",
                    word,
                    b"'.\n",
                ];
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 184, "kmod_module_parse_depline"),
                    msg.concat(),
                );
                self.modules[id].dep_init = false;
                return Err(-libc::ENAMETOOLONG);
            };
            match self.new_from_path(&path) {
                Ok(dep) => deps.insert(0, dep),
                Err(e) => {
                    let ctx = format!("ctx={:p} path=", self as *const Context);
                    let error = format!(" error={}\n", strerror(-e));
                    let msg = [ctx.as_bytes(), &path, error.as_bytes()].concat();
                    self.kmsg(
                        prio::ERR,
                        site("libkmod-module.c", 191, "kmod_module_parse_depline"),
                        msg,
                    );
                    self.modules[id].dep_init = false;
                    return Err(e);
                }
            }
        }
        self.modules[id].deps = deps;
        Ok(())
    }

    /// `kmod_module_get_dependencies`: what the module needs loaded first (deepest first).
    pub fn dependencies(&mut self, id: ModId) -> Vec<ModId> {
        if !self.modules[id].dep_init {
            let name = self.modules[id].name.clone();
            if let Some(line) = self.index.lookup(Which::Dep, &name) {
                let _ = self.parse_depline(id, &line);
            }
        }
        self.modules[id].deps.clone()
    }

    /// `kmod_module_get_path`: the module's file, from how it was created or `modules.dep`.
    pub fn path(&mut self, id: ModId) -> Option<Vec<u8>> {
        if self.modules[id].path.is_some() || self.modules[id].dep_init {
            return self.modules[id].path.clone();
        }
        let name = self.modules[id].name.clone();
        let line = self.index.lookup(Which::Dep, &name)?;
        let _ = self.parse_depline(id, &line);
        self.modules[id].path.clone()
    }

    /// The `.modinfo` strings of a built-in module, from `modules.builtin.modinfo`
    /// (`kmod_builtin_get_modinfo()`): `ENOSYS` when the module is not in it, the errno of
    /// opening it otherwise (positive, as libkmod's iterator returns them).
    pub fn builtin_modinfo(&mut self, name: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
        let path = [&self.dirname[..], b"/modules.builtin.modinfo"].concat();
        if path.len() >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let data = std::fs::read(os_path(&path)).map_err(|e| errno_of(&e))?;
        let mut logged = Vec::new();
        let found = builtin_modinfo_of(&data, name, &mut |m| logged.push(m.to_vec()));
        for message in logged {
            let at = site("libkmod-builtin.c", 193, "kmod_builtin_iter_next");
            self.kmsg(prio::ERR, at, message);
        }
        found
    }

    // ---- configuration applied to a module ---------------------------------------------------

    /// `kmod_module_get_options`: every modprobe.d (and kernel command line) option for the
    /// module's name or the alias it was found through, joined by spaces.
    pub fn options(&mut self, id: ModId) -> Option<String> {
        if let Some(o) = &self.modules[id].options {
            return o.clone();
        }
        let m = &self.modules[id];
        let mut opts: Option<String> = None;
        for o in &self.config.options {
            if !(o.modname.as_bytes() == m.name || m.alias.as_deref() == Some(o.modname.as_bytes()))
            {
                continue;
            }
            if o.options.is_empty() {
                continue;
            }
            match &mut opts {
                Some(s) => {
                    s.push(' ');
                    s.push_str(&o.options);
                }
                None => opts = Some(o.options.clone()),
            }
        }
        self.modules[id].options = Some(opts.clone());
        opts
    }

    /// `kmod_module_get_install_commands`: the first install command whose pattern matches.
    pub fn install_commands(&mut self, id: ModId) -> Option<String> {
        self.command(id, true)
    }

    /// `kmod_module_get_remove_commands`: the first remove command whose pattern matches.
    pub fn remove_commands(&mut self, id: ModId) -> Option<String> {
        self.command(id, false)
    }

    /// The module's install (or remove) command, looked up once.
    fn command(&mut self, id: ModId, install: bool) -> Option<String> {
        let m = &self.modules[id];
        let known = if install {
            &m.install_commands
        } else {
            &m.remove_commands
        };
        if let Some(c) = known {
            return c.clone();
        }
        let commands = if install {
            &self.config.install_commands
        } else {
            &self.config.remove_commands
        };
        let cmd = commands
            .iter()
            .find(|c| fnmatch(c.modname.as_bytes(), &m.name))
            .map(|c| c.command.clone());
        let m = &mut self.modules[id];
        match install {
            true => m.install_commands = Some(cmd.clone()),
            false => m.remove_commands = Some(cmd.clone()),
        }
        cmd
    }

    /// `kmod_module_get_softdeps`: the modules of the first matching softdep, each name looked
    /// up as modprobe would.
    pub fn softdeps(&mut self, id: ModId) -> (Vec<ModId>, Vec<ModId>) {
        let name = self.modules[id].name.clone();
        let Some(dep) = self
            .config
            .softdeps
            .iter()
            .find(|d| fnmatch(d.name.as_bytes(), &name))
            .cloned()
        else {
            return (Vec::new(), Vec::new());
        };
        let mut lookup_all = |names: &[String]| {
            let mut out = Vec::new();
            for n in names {
                match self.lookup(n) {
                    Ok(list) => out.extend(list),
                    Err(_) => {
                        let msg =
                            format!("failed to lookup soft dependency '{n}', continuing anyway.\n");
                        self.kmsg(
                            prio::ERR,
                            site("libkmod-module.c", 1567, "lookup_softdep"),
                            &msg,
                        );
                    }
                }
            }
            out
        };
        let pre = lookup_all(&dep.pre);
        let post = lookup_all(&dep.post);
        (pre, post)
    }

    /// Whether a modprobe.d blacklist line names the module.
    pub fn is_blacklisted(&self, id: ModId) -> bool {
        let name = &self.modules[id].name;
        self.config.blacklists.iter().any(|b| b.as_bytes() == name)
    }

    // ---- kernel state ------------------------------------------------------------------------

    /// `kmod_module_is_builtin`.
    pub fn is_builtin(&mut self, id: ModId) -> bool {
        if self.modules[id].builtin.is_none() {
            let name = &self.modules[id].name;
            let b = self.index.lookup(Which::Builtin, name).is_some();
            self.modules[id].builtin = Some(b);
        }
        self.modules[id].builtin == Some(true)
    }

    /// `kmod_module_get_initstate`: a negative errno when the module is neither built in nor
    /// in sysfs.
    pub fn initstate(&mut self, id: ModId) -> Result<ModuleState, i32> {
        if self.is_builtin(id) {
            return Ok(ModuleState::Builtin);
        }
        let name = self.name(id).into_owned();
        match self.kernel.initstate(&name) {
            Ok(InitState::Live) => Ok(ModuleState::Live),
            Ok(InitState::Coming) => Ok(ModuleState::Coming),
            Ok(InitState::Going) => Ok(ModuleState::Going),
            Err(SysfsError::Open(e)) => Err(-e),
            Err(SysfsError::Invalid(buf)) => {
                let path = self.kernel.sys_module.join(&name).join("initstate");
                let msg = format!("unknown {}: '{}'\n", path.display(), buf);
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 1847, "kmod_module_get_initstate"),
                    &msg,
                );
                Err(-libc::EINVAL)
            }
        }
    }

    /// Loaded and running, or built in (`module_is_inkernel`).
    pub fn is_inkernel(&mut self, id: ModId) -> bool {
        matches!(
            self.initstate(id),
            Ok(ModuleState::Live) | Ok(ModuleState::Builtin)
        )
    }

    /// `kmod_module_get_refcnt`: a negative errno when it cannot be read.
    pub fn refcnt(&mut self, id: ModId) -> i64 {
        let name = self.name(id).into_owned();
        match self.kernel.refcnt(&name) {
            Ok(n) => n,
            Err(SysfsError::Open(e)) => -(e as i64),
            Err(SysfsError::Invalid(why)) => {
                let path = self.kernel.sys_module.join(&name).join("refcnt");
                let msg = format!(
                    "could not read integer from '{}': '{}'\n",
                    path.display(),
                    why
                );
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 1967, "kmod_module_get_refcnt"),
                    &msg,
                );
                -(libc::EINVAL as i64)
            }
        }
    }

    /// `kmod_module_get_holders`: `None` (after an error message) when the holders directory
    /// cannot be read.
    pub fn holders(&mut self, id: ModId) -> Option<Vec<ModId>> {
        let name = self.name(id).into_owned();
        match self.kernel.holders(&name) {
            Ok(names) => Some(names.iter().map(|n| self.new_from_name(n)).collect()),
            Err(e) => {
                let msg = format!(
                    "could not open '{}': {}\n",
                    self.kernel.holders_path(&name),
                    strerror(e.raw_os_error().unwrap_or(libc::EIO))
                );
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 1998, "kmod_module_get_holders"),
                    &msg,
                );
                None
            }
        }
    }

    // ---- insert and remove ----------------------------------------------------------------------

    /// `kmod_module_insert_module`: loads the module's file with `options`.
    pub fn insert_module(
        &mut self,
        id: ModId,
        force: ForceFlags,
        options: &str,
    ) -> Result<(), i32> {
        let Some(path) = self.path(id) else {
            let msg = format!("could not find module by name='{}'\n", self.name(id));
            self.kmsg(
                prio::ERR,
                site("libkmod-module.c", 895, "kmod_module_insert_module"),
                &msg,
            );
            return Err(-libc::ENOENT);
        };
        let mut info = Vec::new();
        let r = insert_module_file(self.kernel, os_path(&path), force, options, &mut info);
        for m in &info {
            let line = if m.contains("modversion") { 930 } else { 936 };
            self.kmsg(
                prio::INFO,
                site("libkmod-module.c", line, "kmod_module_insert_module"),
                m,
            );
        }
        r.map_err(|e| {
            let msg = [
                b"Failed to insert module '",
                &path[..],
                b"': ",
                strerror(e).as_bytes(),
                b"\n",
            ]
            .concat();
            self.kmsg(
                prio::INFO,
                site("libkmod-module.c", 949, "kmod_module_insert_module"),
                &msg,
            );
            -e
        })
    }

    /// `kmod_module_remove_module`: `delete_module` with `O_NONBLOCK`; `nolog` suppresses
    /// libkmod's error message.
    pub fn remove_module(&mut self, id: ModId, force: bool, nolog: bool) -> Result<(), i32> {
        let name = self.name(id).into_owned();
        match self.kernel.syscalls.delete_module(&name, force) {
            Ok(()) => Ok(()),
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                if !nolog {
                    let msg = format!("could not remove '{name}': {}\n", strerror(errno));
                    self.kmsg(
                        prio::ERR,
                        site("libkmod-module.c", 856, "kmod_module_remove_module"),
                        &msg,
                    );
                }
                Err(-errno)
            }
        }
    }

    /// libkmod's `command_do` for install commands: runs `cmd` with `/bin/sh -c` and
    /// `MODPROBE_MODULE` set; any failure is `-EINVAL`.
    fn run_install_command(&mut self, id: ModId, cmd: &str) -> i32 {
        let name = self.name(id).into_owned();
        match run_shell(cmd, &name, &self.command_env) {
            Ok(0) => 0,
            Ok(code) => {
                let msg = format!(
                    "Error running install command '{cmd}' for module {name}: retcode {code}\n"
                );
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 1047, "command_do"),
                    &msg,
                );
                -libc::EINVAL
            }
            Err(e) => {
                let msg = format!(
                    "Could not run install command '{cmd}' for module {name}: {}\n",
                    strerror(e)
                );
                self.kmsg(
                    prio::ERR,
                    site("libkmod-module.c", 1041, "command_do"),
                    &msg,
                );
                -libc::EINVAL
            }
        }
    }

    // ---- probe ----------------------------------------------------------------------------------

    fn probe_list_rec(
        &mut self,
        id: ModId,
        required: bool,
        ignorecmd: bool,
        list: &mut Vec<ModId>,
    ) {
        if self.modules[id].visited {
            return;
        }
        self.modules[id].visited = true;
        let deps = self.dependencies(id);
        if required {
            self.modules[id].required = true;
            for &d in &deps {
                self.modules[d].required = true;
            }
        }
        for d in deps {
            self.fill_softdep(d, list);
        }
        if ignorecmd {
            list.push(id);
            self.modules[id].ignorecmd = true;
        } else {
            self.fill_softdep(id, list);
        }
    }

    fn fill_softdep(&mut self, id: ModId, list: &mut Vec<ModId>) {
        let (pre, post) = self.softdeps(id);
        for &m in &pre {
            self.probe_list_rec(m, false, false, list);
        }
        list.push(id);
        self.modules[id].ignorecmd = !pre.is_empty() || !post.is_empty();
        for &m in &post {
            self.probe_list_rec(m, false, false, list);
        }
    }

    /// `kmod_module_get_probe_list`: the modules to load for `id`, in order: for each
    /// dependency its pre-softdeps, itself and its post-softdeps, then the same for `id`.
    pub fn probe_list(&mut self, id: ModId, ignorecmd: bool) -> Vec<ModId> {
        for m in &mut self.modules {
            m.visited = false;
            m.required = false;
        }
        let mut list = Vec::new();
        self.probe_list_rec(id, true, ignorecmd, &mut list);
        list
    }

    /// `kmod_module_probe_insert_module`: loads `id` with everything it needs. `show` is called
    /// for each action (`install` command or `insmod` of a file) with the options, before it is
    /// taken. Returns 0, a positive `STOPPED_*` value when a blacklist stopped it, or a negative
    /// errno.
    pub fn probe_insert(
        &mut self,
        id: ModId,
        flags: ProbeFlags,
        extra_options: Option<&str>,
        show: Option<&mut dyn Write>,
    ) -> i32 {
        let mut show = show;
        if !flags.ignore_loaded && self.is_inkernel(id) {
            return if flags.fail_on_loaded {
                -libc::EEXIST
            } else {
                0
            };
        }
        let stop = if self.modules[id].alias.is_some() && flags.apply_blacklist_alias_only {
            STOPPED_BLACKLIST_ALIAS_ONLY
        } else if flags.apply_blacklist_all {
            STOPPED_BLACKLIST_ALL
        } else if flags.apply_blacklist {
            STOPPED_BLACKLIST
        } else {
            0
        };
        if stop != 0 && self.is_blacklisted(id) {
            return stop;
        }
        let mut list = self.probe_list(id, flags.ignore_command);
        if flags.apply_blacklist_all {
            list.retain(|&m| !self.is_blacklisted(m));
            if list.is_empty() {
                return STOPPED_BLACKLIST_ALL;
            }
        }
        let mut err = 0;
        for m in list {
            let moptions = self.options(m);
            let cmd = self.install_commands(m);
            if !flags.ignore_loaded && self.is_inkernel(m) {
                err = -libc::EEXIST;
            } else {
                let options = options_concat(
                    moptions.as_deref(),
                    if m == id { extra_options } else { None },
                );
                let options = options.unwrap_or_default();
                if let (Some(cmd), false) = (&cmd, self.modules[m].ignorecmd) {
                    if let Some(out) = show.as_deref_mut() {
                        let _ = writeln!(out, "install {cmd} {options}");
                        let _ = out.flush();
                    }
                    if !flags.dry_run {
                        err = self.do_install_commands(m, cmd, &options);
                    }
                } else {
                    if let Some(out) = show.as_deref_mut() {
                        self.print_insmod(m, &options, out);
                    }
                    if !flags.dry_run {
                        err = match self.insert_module(m, flags.force, &options) {
                            Ok(()) => 0,
                            Err(e) => e,
                        };
                    }
                }
            }
            if err == -libc::EEXIST && m == id && flags.fail_on_loaded {
                break;
            }
            if err == -libc::EEXIST || !self.modules[m].required {
                err = 0;
            } else if err < 0 {
                break;
            }
        }
        err
    }

    /// modprobe's `print_action` for a module file: `insmod PATH OPTIONS`, or `builtin NAME`.
    fn print_insmod(&mut self, m: ModId, options: &str, out: &mut dyn Write) {
        match self.path(m) {
            Some(path) => {
                let line = [b"insmod ", &path[..], b" ", options.as_bytes(), b"\n"].concat();
                let _ = out.write_all(&line);
            }
            None => {
                if self.initstate(m) == Ok(ModuleState::Builtin) {
                    let _ = writeln!(out, "builtin {}", self.name(m));
                }
            }
        }
        let _ = out.flush();
    }

    /// `module_do_install_commands`: `$CMDLINE_OPTS` becomes the options, then the command runs.
    fn do_install_commands(&mut self, m: ModId, command: &str, options: &str) -> i32 {
        let cmd = command.replace("$CMDLINE_OPTS", options);
        self.run_install_command(m, &cmd)
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
    Err(libc::ENOSYS)
}

/// `builtin_modinfo_of` for the `builtin_modinfo` fuzz target: `name`'s strings in the
/// contents of a `modules.builtin.modinfo` (or the errno); `log` gets what libkmod would log.
#[doc(hidden)]
pub fn fuzz_builtin_modinfo(
    data: &[u8],
    name: &[u8],
    log: &mut dyn FnMut(&[u8]),
) -> Result<Vec<Vec<u8>>, i32> {
    builtin_modinfo_of(data, name, log)
}

/// `module_options_concat`: configured options, a space, the command line's options (kmod keeps
/// the space even when there are none from the command line).
fn options_concat(opt: Option<&str>, xopt: Option<&str>) -> Option<String> {
    let (ol, xl) = (opt.map_or(0, str::len), xopt.map_or(0, str::len));
    if ol == 0 && xl == 0 {
        return None;
    }
    let mut r = String::new();
    if let Some(o) = opt {
        r.push_str(o);
        r.push(' ');
    }
    if let Some(x) = xopt {
        r.push_str(x);
    }
    Some(r)
}

/// `system(cmd)` with `MODPROBE_MODULE=name` and `env`: the command's exit code (a command
/// killed by a signal counts as 0, as `WEXITSTATUS` has it), or the errno of starting the shell.
pub fn run_shell(cmd: &str, name: &str, env: &[(String, String)]) -> Result<i32, i32> {
    let _ = std::io::stdout().flush();
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c").arg(cmd).env("MODPROBE_MODULE", name);
    for (k, v) in env {
        c.env(k, v);
    }
    match c.status() {
        Ok(status) => Ok(status.code().unwrap_or(0) & 0xff),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::ENOENT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_joined_as_kmod_joins_them() {
        assert_eq!(options_concat(None, None), None);
        assert_eq!(options_concat(Some("a=1"), None).as_deref(), Some("a=1 "));
        assert_eq!(options_concat(None, Some("b=2")).as_deref(), Some("b=2"));
        assert_eq!(
            options_concat(Some("a=1"), Some("b=2")).as_deref(),
            Some("a=1 b=2")
        );
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
        assert_eq!(builtin_modinfo_of(data, b"c", &mut log), Err(libc::ENOSYS));
        let bad = b"a.x=1\0nodot\0b.y=2\0";
        assert_eq!(builtin_modinfo_of(bad, b"b", &mut log), Err(libc::ENOSYS));
        assert_eq!(
            logged,
            [b"kmod_builtin_iter_next: unexpected string without modname prefix\n".to_vec()]
        );
    }
}
