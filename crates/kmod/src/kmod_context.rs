//! The part of libkmod 30 the tools stand on, rebuilt: a context (`struct kmod_ctx`) holding the
//! configuration, the modules directory's indexes and a pool of module objects, and on it the
//! lookups (`kmod_module_new_from_lookup`), dependency lines, install/remove commands, options,
//! softdeps, the probe list and `kmod_module_probe_insert_module`, module state from sysfs, and
//! insertion and removal.
//!
//! Module objects live in an arena and are named by [`ModId`]. As in libkmod, a module found
//! through an alias is a different object from the same module found by name (its pool key is
//! `name\alias`), which matters for which options apply and for the probe list's bookkeeping.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fnmatch::fnmatch;
use crate::indexes::{Indexes, Which};
use crate::kernel_state::{InitState, Kernel, SysfsError};
use crate::modprobe_config::{list_config_files, ModprobeConfig};
use crate::module_insert::{insert_module_file, ForceFlags};
use crate::tool_log::{prio, site, strerror, Log};

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
    name: String,
    alias: Option<String>,
    path: Option<String>,
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
    pub dirname: String,
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
    pool: HashMap<String, ModId>,
}

/// Text from bytes that may not be UTF-8.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `path_make_absolute_cwd`.
fn make_absolute(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => format!("{}/{}", cwd.display(), p),
        Err(_) => p.to_string(),
    }
}

impl<'a> Context<'a> {
    /// `kmod_new(dirname, config_paths)`: `dirname` defaults to `/lib/modules/$(uname -r)`
    /// (the kernel's `lib_modules` and release);
    /// `config_paths` `None` means kmod's default directories, `Some(&[])` none at all (as the
    /// compat insmod, rmmod and lsmod ask). Configuration messages are printed with libkmod's own
    /// format, as they come before the tool sets up its log.
    pub fn new(
        dirname: Option<&str>,
        config_paths: Option<&[PathBuf]>,
        kernel: &'a Kernel,
        log: Log,
        err: &'a mut dyn Write,
    ) -> Context<'a> {
        let dirname = match dirname {
            Some(d) => make_absolute(d),
            None => format!(
                "{}/{}",
                kernel.lib_modules.display(),
                kernel.release().unwrap_or_else(|_| String::new())
            ),
        };
        let defaults: Vec<PathBuf> = crate::modprobe_config::DEFAULT_CONFIG_PATHS
            .iter()
            .map(PathBuf::from)
            .collect();
        let paths = config_paths.unwrap_or(&defaults);
        let mut config = ModprobeConfig::default();
        let (files, mut messages) = list_config_files(Path::new(&dirname), paths);
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
            index: Indexes::open(dirname.as_bytes()),
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
    fn kmsg(&mut self, p: i32, site: crate::tool_log::Site, text: &str) {
        self.log.libkmod(self.err, p, site, text);
    }

    // ---- module objects -------------------------------------------------------------------

    fn new_module(&mut self, key: String, name: &str, alias: Option<&str>) -> ModId {
        if let Some(&id) = self.pool.get(&key) {
            return id;
        }
        let id = self.modules.len();
        self.modules.push(Module {
            name: name.to_string(),
            alias: alias.map(str::to_string),
            ..Module::default()
        });
        self.pool.insert(key, id);
        id
    }

    /// `kmod_module_new_from_name`: the module called `name` (normalized: dashes become
    /// underscores, and the name ends at the first dot).
    pub fn new_from_name(&mut self, name: &str) -> ModId {
        let n = lossy(kmodlab_modindex::names::modname_normalize(name.as_bytes()));
        self.new_module(n.clone(), &n, None)
    }

    /// `kmod_module_new_from_alias`: the module `name` as found through `alias`.
    pub fn new_from_alias(&mut self, alias: &str, name: &str) -> ModId {
        self.new_module(format!("{name}\\{alias}"), name, Some(alias))
    }

    /// `kmod_module_new_from_path`: the module in file `path` (which must exist); a negative
    /// errno otherwise.
    pub fn new_from_path(&mut self, path: &str) -> Result<ModId, i32> {
        let abspath = make_absolute(path);
        if let Err(e) = std::fs::metadata(&abspath) {
            return Err(-e.raw_os_error().unwrap_or(libc::ENOENT));
        }
        let name =
            kmodlab_modindex::names::path_to_modname(path.as_bytes()).ok_or(-libc::ENOENT)?;
        let name = lossy(name);
        let id = match self.pool.get(&name) {
            Some(&id) => {
                match &self.modules[id].path {
                    None => self.modules[id].path = Some(abspath),
                    Some(p) if *p == abspath => {}
                    Some(p) => {
                        let msg = format!("kmod_module '{name}' already exists with different path: new-path='{abspath}' old-path='{p}'\n");
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

    /// The module's name (normalized).
    pub fn name(&self, id: ModId) -> &str {
        &self.modules[id].name
    }

    /// The alias the module was found through, if any.
    pub fn alias(&self, id: ModId) -> Option<&str> {
        self.modules[id].alias.as_deref()
    }

    // ---- lookups ----------------------------------------------------------------------------

    /// `kmod_module_new_from_lookup`: the modules `given` names, looking in order at modprobe.d
    /// aliases, `modules.dep`, `modules.symbols`, install/remove commands, `modules.alias`,
    /// `modules.builtin` and the built-in modules' aliases; the first place with an answer wins.
    /// An empty list when nothing matched; `-EINVAL` for an alias with unbalanced brackets.
    pub fn lookup(&mut self, given: &str) -> Result<Vec<ModId>, i32> {
        let alias =
            kmodlab_modindex::names::alias_normalize(given.as_bytes()).ok_or(-libc::EINVAL)?;
        let alias = lossy(alias);
        type Lookup<'x> = fn(&mut Context<'x>, &str) -> Option<Vec<ModId>>;
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
            if let Some(list) = f(self, &alias) {
                if !list.is_empty() {
                    return Ok(list);
                }
            }
        }
        Ok(Vec::new())
    }

    fn lookup_config(&mut self, name: &str) -> Option<Vec<ModId>> {
        let hits: Vec<(String, String)> = self
            .config
            .aliases
            .iter()
            .filter(|a| fnmatch(&a.name, name))
            .map(|a| (a.name.clone(), a.modname.clone()))
            .collect();
        Some(
            hits.into_iter()
                .map(|(alias, modname)| self.new_from_alias(&alias, &modname))
                .collect(),
        )
    }

    fn lookup_moddep(&mut self, name: &str) -> Option<Vec<ModId>> {
        if name.contains(':') {
            return Some(Vec::new());
        }
        let line = self.search_moddep(name)?;
        let id = self.new_from_name(name);
        let _ = self.parse_depline(id, &line);
        Some(vec![id])
    }

    fn alias_bin(&mut self, which: Which, name: &str) -> Option<Vec<ModId>> {
        let values = self.index.search_wild(which, name.as_bytes());
        Some(
            values
                .into_iter()
                .map(|v| self.new_from_alias(name, &lossy(v)))
                .collect(),
        )
    }

    fn lookup_symbols(&mut self, name: &str) -> Option<Vec<ModId>> {
        if !name.starts_with("symbol:") {
            return Some(Vec::new());
        }
        self.alias_bin(Which::Symbols, name)
    }

    fn lookup_aliases(&mut self, name: &str) -> Option<Vec<ModId>> {
        self.alias_bin(Which::Alias, name)
    }

    fn lookup_commands(&mut self, name: &str) -> Option<Vec<ModId>> {
        let install = self
            .config
            .install_commands
            .iter()
            .find(|c| c.modname == name)
            .map(|c| (c.modname.clone(), c.command.clone()));
        if let Some((modname, cmd)) = install {
            let id = self.new_from_name(&modname);
            self.modules[id].install_commands = Some(Some(cmd));
            return Some(vec![id]);
        }
        let remove = self
            .config
            .remove_commands
            .iter()
            .find(|c| c.modname == name)
            .map(|c| (c.modname.clone(), c.command.clone()));
        if let Some((modname, cmd)) = remove {
            let id = self.new_from_name(&modname);
            self.modules[id].remove_commands = Some(Some(cmd));
            return Some(vec![id]);
        }
        Some(Vec::new())
    }

    fn lookup_builtin(&mut self, name: &str) -> Option<Vec<ModId>> {
        let found = self.index.lookup(Which::Builtin, name.as_bytes()).is_some();
        if !found {
            return Some(Vec::new());
        }
        let id = self.new_from_name(name);
        self.modules[id].builtin = Some(true);
        Some(vec![id])
    }

    fn lookup_builtin_aliases(&mut self, name: &str) -> Option<Vec<ModId>> {
        let list = self.alias_bin(Which::BuiltinAlias, name)?;
        for &id in &list {
            self.modules[id].builtin = Some(true);
        }
        Some(list)
    }

    fn search_moddep(&self, name: &str) -> Option<String> {
        self.index.lookup(Which::Dep, name.as_bytes()).map(lossy)
    }

    // ---- dependencies and paths ------------------------------------------------------------

    /// `kmod_module_parse_depline`: sets the module's path and dependencies from its
    /// `modules.dep` line. Dependencies are kept in libkmod's order: the reverse of the line's.
    fn parse_depline(&mut self, id: ModId, line: &str) -> Result<(), i32> {
        if self.modules[id].dep_init {
            return Ok(());
        }
        self.modules[id].dep_init = true;
        let Some(colon) = line.find(':') else {
            return Ok(());
        };
        let join = |dirname: &str, p: &str| {
            if p.starts_with('/') {
                p.to_string()
            } else {
                format!("{dirname}/{p}")
            }
        };
        if self.modules[id].path.is_none() {
            self.modules[id].path = Some(join(&self.dirname, &line[..colon]));
        }
        let mut deps = Vec::new();
        for word in line[colon + 1..]
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
        {
            let path = join(&self.dirname, word);
            match self.new_from_path(&path) {
                Ok(dep) => deps.insert(0, dep),
                Err(e) => {
                    let msg = format!("ctx=(nil) path={path} error={}\n", strerror(-e));
                    self.kmsg(
                        prio::ERR,
                        site("libkmod-module.c", 191, "kmod_module_parse_depline"),
                        &msg,
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
            if let Some(line) = self.search_moddep(&name) {
                let _ = self.parse_depline(id, &line);
            }
        }
        self.modules[id].deps.clone()
    }

    /// `kmod_module_get_path`: the module's file, from how it was created or `modules.dep`.
    pub fn path(&mut self, id: ModId) -> Option<String> {
        if self.modules[id].path.is_some() || self.modules[id].dep_init {
            return self.modules[id].path.clone();
        }
        let name = self.modules[id].name.clone();
        let line = self.search_moddep(&name)?;
        let _ = self.parse_depline(id, &line);
        self.modules[id].path.clone()
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
            if !(o.modname == m.name || m.alias.as_deref() == Some(o.modname.as_str())) {
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
        if let Some(c) = &self.modules[id].install_commands {
            return c.clone();
        }
        let name = &self.modules[id].name;
        let cmd = self
            .config
            .install_commands
            .iter()
            .find(|c| fnmatch(&c.modname, name))
            .map(|c| c.command.clone());
        self.modules[id].install_commands = Some(cmd.clone());
        cmd
    }

    /// `kmod_module_get_remove_commands`: the first remove command whose pattern matches.
    pub fn remove_commands(&mut self, id: ModId) -> Option<String> {
        if let Some(c) = &self.modules[id].remove_commands {
            return c.clone();
        }
        let name = &self.modules[id].name;
        let cmd = self
            .config
            .remove_commands
            .iter()
            .find(|c| fnmatch(&c.modname, name))
            .map(|c| c.command.clone());
        self.modules[id].remove_commands = Some(cmd.clone());
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
            .find(|d| fnmatch(&d.name, &name))
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
        self.config.blacklists.iter().any(|b| b == name)
    }

    // ---- kernel state ------------------------------------------------------------------------

    /// `kmod_module_is_builtin`.
    pub fn is_builtin(&mut self, id: ModId) -> bool {
        if self.modules[id].builtin.is_none() {
            let name = &self.modules[id].name;
            let b = self.index.lookup(Which::Builtin, name.as_bytes()).is_some();
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
        let name = self.modules[id].name.clone();
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
        let name = self.modules[id].name.clone();
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
        let name = self.modules[id].name.clone();
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
            let msg = format!(
                "could not find module by name='{}'\n",
                self.modules[id].name
            );
            self.kmsg(
                prio::ERR,
                site("libkmod-module.c", 895, "kmod_module_insert_module"),
                &msg,
            );
            return Err(-libc::ENOENT);
        };
        let mut info = Vec::new();
        let r = insert_module_file(self.kernel, Path::new(&path), force, options, &mut info);
        for m in &info {
            let line = if m.contains("modversion") { 930 } else { 936 };
            self.kmsg(
                prio::INFO,
                site("libkmod-module.c", line, "kmod_module_insert_module"),
                m,
            );
        }
        r.map_err(|e| {
            let msg = format!("Failed to insert module '{path}': {}\n", strerror(e));
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
        let name = self.modules[id].name.clone();
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
        let name = self.modules[id].name.clone();
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
                let _ = writeln!(out, "insmod {path} {options}");
            }
            None => {
                if self.initstate(m) == Ok(ModuleState::Builtin) {
                    let _ = writeln!(out, "builtin {}", self.modules[m].name);
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
}
