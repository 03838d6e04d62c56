//! `modprobe`, as kmod 30 has it: loads a module by name or alias with everything it needs
//! (dependencies from `modules.dep`, softdeps, options from modprobe.d and the kernel command
//! line, install commands), or removes one (`-r`) with what it leaves unused; `-n`/`-v` show the
//! actions (`insmod /lib/modules/.../x.ko.xz OPTIONS`), `-D` shows them whatever is loaded, `-c`
//! dumps the configuration and the alias and symbol indexes, `-R` resolves an alias.
//!
//! Messages, exit codes and the quirks of kmod 30 are kept: a `FATAL` message ends the run at
//! once (unless `-q`), blacklists apply to aliases only unless `-b`, options from modprobe.d are
//! followed by a space even when the command line adds none.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kmodlab_modfile::kmod_elf::KmodElf;
use kmodlab_modfile::kmod_file::{read_image, Compressions};

use crate::getopt::{long, short_name, Getopt, HasArg, LongOpt};
use crate::indexes::Which;
use crate::kernel_state::Kernel;
use crate::kmod_context::{run_shell, Context, ModId, ModuleState, ProbeFlags};
use crate::module_insert::ForceFlags;
use crate::tool_log::{prio, strerror, Log};

const OPT_FORCE_VERMAGIC: u32 = 1;
const OPT_FORCE_MODVERSION: u32 = 2;
const OPT_FIRST_TIME: u32 = 3;
const OPT_SHOW_MODVERSIONS: u32 = 4;
const OPT_REMOVE_HOLDERS: u32 = 5;
const OPT_SHOW_EXPORTS: u32 = 6;

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("all", HasArg::No, 'a' as u32),
    long("remove", HasArg::No, 'r' as u32),
    long("remove-dependencies", HasArg::No, OPT_REMOVE_HOLDERS),
    long("remove-holders", HasArg::No, OPT_REMOVE_HOLDERS),
    long("wait", HasArg::Required, 'w' as u32),
    long("resolve-alias", HasArg::No, 'R' as u32),
    long("first-time", HasArg::No, OPT_FIRST_TIME),
    long("ignore-install", HasArg::No, 'i' as u32),
    long("ignore-remove", HasArg::No, 'i' as u32),
    long("use-blacklist", HasArg::No, 'b' as u32),
    long("force", HasArg::No, 'f' as u32),
    long("force-modversion", HasArg::No, OPT_FORCE_MODVERSION),
    long("force-vermagic", HasArg::No, OPT_FORCE_VERMAGIC),
    long("show-depends", HasArg::No, 'D' as u32),
    long("showconfig", HasArg::No, 'c' as u32),
    long("show-config", HasArg::No, 'c' as u32),
    long("show-modversions", HasArg::No, OPT_SHOW_MODVERSIONS),
    long("dump-modversions", HasArg::No, OPT_SHOW_MODVERSIONS),
    long("show-exports", HasArg::No, OPT_SHOW_EXPORTS),
    long("dry-run", HasArg::No, 'n' as u32),
    long("show", HasArg::No, 'n' as u32),
    long("config", HasArg::Required, 'C' as u32),
    long("dirname", HasArg::Required, 'd' as u32),
    long("set-version", HasArg::Required, 'S' as u32),
    long("syslog", HasArg::No, 's' as u32),
    long("quiet", HasArg::No, 'q' as u32),
    long("verbose", HasArg::No, 'v' as u32),
    long("version", HasArg::No, 'V' as u32),
    long("help", HasArg::No, 'h' as u32),
];

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "arw:RibfDcnC:d:S:sqvVh";

const DEFAULT_VERBOSE: i32 = prio::WARNING;

fn help(name: &str) -> String {
    let usage = [
        "[options] [-i] [-b] modulename",
        "[options] -a [-i] [-b] modulename [modulename...]",
        "[options] -r [-i] modulename",
        "[options] -r -a [-i] modulename [modulename...]",
        "[options] -c",
        "[options] --dump-modversions filename",
    ];
    let mut s = String::from("Usage:\n");
    for u in usage {
        s.push_str(&format!("\t{name} {u}\n"));
    }
    s.push_str(
        "Management Options:\n\
         \t-a, --all                   Consider every non-argument to\n\
         \t                            be a module name to be inserted\n\
         \t                            or removed (-r)\n\
         \t-r, --remove                Remove modules instead of inserting\n\
         \t    --remove-dependencies   Deprecated: use --remove-holders\n\
         \t    --remove-holders        Also remove module holders (use together with -r)\n\
         \t-w, --wait <MSEC>           When removing a module, wait up to MSEC for\n\
         \t                            module's refcount to become 0 so it can be\n\
         \t                            removed (use together with -r)\n\
         \t    --first-time            Fail if module already inserted or removed\n\
         \t-i, --ignore-install        Ignore install commands\n\
         \t-i, --ignore-remove         Ignore remove commands\n\
         \t-b, --use-blacklist         Apply blacklist to resolved alias.\n\
         \t-f, --force                 Force module insertion or removal.\n\
         \t                            implies --force-modversions and\n\
         \t                            --force-vermagic\n\
         \t    --force-modversion      Ignore module's version\n\
         \t    --force-vermagic        Ignore module's version magic\n\
         \n\
         Query Options:\n\
         \t-R, --resolve-alias         Only lookup and print alias and exit\n\
         \t-D, --show-depends          Only print module dependencies and exit\n\
         \t-c, --showconfig            Print out known configuration and exit\n\
         \t-c, --show-config           Same as --showconfig\n\
         \t    --show-modversions      Dump module symbol version and exit\n\
         \t    --dump-modversions      Same as --show-modversions\n\
         \t    --show-exports          Only print module exported symbol versions and exit\n\
         \n\
         General Options:\n\
         \t-n, --dry-run               Do not execute operations, just print out\n\
         \t-n, --show                  Same as --dry-run\n\
         \t-C, --config=FILE           Use FILE instead of default search paths\n\
         \t-d, --dirname=DIR           Use DIR as filesystem root for /lib/modules\n\
         \t-S, --set-version=VERSION   Use VERSION instead of `uname -r`\n\
         \t-s, --syslog                print to syslog, not stderr\n\
         \t-q, --quiet                 disable messages\n\
         \t-v, --verbose               enables more messages\n\
         \t-V, --version               show version\n\
         \t-h, --help                  show this help\n",
    );
    s
}

/// A `FATAL` message was printed: the run ends now with status 1.
#[derive(Debug)]
struct Fatal;

type Res<T> = Result<T, Fatal>;

/// What the command line asked for.
#[derive(Debug, Default)]
struct Settings {
    verbose: i32,
    /// Priority of modprobe's own `LOG()` messages: CRIT (fatal) unless `-a`.
    log_priority: i32,
    do_show: bool,
    dry_run: bool,
    ignore_loaded: bool,
    lookup_only: bool,
    first_time: bool,
    ignore_commands: bool,
    use_blacklist: bool,
    force: bool,
    strip_modversion: bool,
    strip_vermagic: bool,
    remove_holders: bool,
    wait_msec: u64,
    quiet_inuse: bool,
}

impl Settings {
    fn show(&self) -> bool {
        self.do_show || self.verbose > DEFAULT_VERBOSE
    }
}

struct Modprobe<'c, 'a> {
    ctx: &'c mut Context<'a>,
    s: &'c Settings,
    out: &'c mut dyn Write,
}

const RMMOD_FLAG_REMOVE_HOLDERS: u32 = 1;
const RMMOD_FLAG_IGNORE_BUILTIN: u32 = 2;

impl Modprobe<'_, '_> {
    /// modprobe's `LOG()`: at CRIT unless `-a`; a printed CRIT message ends the run.
    fn log(&mut self, msg: &str) -> Res<()> {
        if self.ctx.log.print(self.ctx.err, self.s.log_priority, msg) {
            Err(Fatal)
        } else {
            Ok(())
        }
    }

    fn err(&mut self, msg: &str) {
        self.ctx.log.print(self.ctx.err, prio::ERR, msg);
    }

    /// `SHOW()`: printed on stdout with `-n`/`-D` or `-v`.
    fn show(&mut self, msg: &str) {
        if !self.s.show() {
            return;
        }
        let _ = self.out.write_all(msg.as_bytes());
        let _ = self.out.flush();
    }

    // ---- insert -----------------------------------------------------------------------------

    fn insmod(&mut self, alias: &str, extra_options: Option<&str>) -> Res<i32> {
        let list = self.ctx.lookup(alias);
        let list = match list {
            Ok(list) if !list.is_empty() => list,
            _ => {
                let msg = format!(
                    "Module {alias} not found in directory {}\n",
                    String::from_utf8_lossy(&self.ctx.dirname)
                );
                self.log(&msg)?;
                return Ok(-libc::ENOENT);
            }
        };
        let s = self.s;
        let flags = ProbeFlags {
            force: ForceFlags {
                vermagic: s.strip_vermagic || s.force,
                modversion: s.strip_modversion || s.force,
            },
            ignore_command: s.ignore_commands,
            ignore_loaded: s.ignore_loaded,
            dry_run: s.dry_run,
            fail_on_loaded: s.first_time,
            apply_blacklist_all: false,
            apply_blacklist: s.use_blacklist,
            apply_blacklist_alias_only: true,
        };
        let mut err = 0;
        for id in list {
            if s.lookup_only {
                let _ = writeln!(self.out, "{}", self.ctx.name(id));
            } else {
                let show: Option<&mut dyn Write> =
                    if s.show() { Some(&mut *self.out) } else { None };
                err = self.ctx.probe_insert(id, flags, extra_options, show);
            }
            if err >= 0 {
                err = 0;
            } else {
                let name = self.ctx.name(id).to_string();
                let msg = match -err {
                    libc::EEXIST => {
                        format!("could not insert '{name}': Module already in kernel\n")
                    }
                    libc::ENOENT => format!(
                        "could not insert '{name}': Unknown symbol in module, or unknown parameter (see dmesg)\n"
                    ),
                    e => format!("could not insert '{name}': {}\n", strerror(e)),
                };
                self.err(&msg);
            }
        }
        Ok(err)
    }

    // ---- remove -----------------------------------------------------------------------------

    fn rmmod_do_remove_module(&mut self, id: ModId) -> Res<i32> {
        let name = self.ctx.name(id).to_string();
        self.show(&format!("rmmod {name}\n"));
        if self.s.dry_run {
            return Ok(0);
        }
        let wait = self.s.wait_msec;
        // kmod 30's back-off: the interval doubles, is cut to fit before the deadline, and the
        // loop ends when no time is left — with the sleep's success as the result, so a module
        // still busy at the deadline is reported as removed (status 0, no message), as kmod 30
        // does.
        let start = Instant::now();
        let now_ms = || start.elapsed().as_millis() as u64;
        let mut tend: Option<u64> = None;
        let mut interval: u64 = 0;
        let mut err;
        loop {
            err = match self.ctx.remove_module(id, self.s.force, wait != 0) {
                Ok(()) => 0,
                Err(e) => e,
            };
            if err == -libc::EEXIST {
                if !self.s.first_time {
                    err = 0;
                } else {
                    self.log(&format!("Module {name} is not in kernel.\n"))?;
                }
                break;
            } else if err == -libc::EAGAIN && wait != 0 {
                let end = *tend.get_or_insert_with(|| {
                    interval = 1;
                    now_ms() + wait
                });
                let t = now_ms();
                interval = if interval == 0 { 1 } else { interval << 1 };
                while interval > 0 && t + interval > end {
                    interval >>= 1;
                }
                if interval == 0 && end > t {
                    interval = end - t;
                }
                std::thread::sleep(Duration::from_millis(interval));
                err = 0;
            } else {
                break;
            }
            if interval == 0 {
                break;
            }
        }
        if err < 0 && wait != 0 {
            self.err(&format!("could not remove '{name}': {}\n", strerror(-err)));
        }
        Ok(err)
    }

    fn rmmod_do_modlist(&mut self, list: &[ModId], stop_on_errors: bool) -> Res<i32> {
        for &m in list.iter().rev() {
            let r = self.rmmod_do_module(m, RMMOD_FLAG_IGNORE_BUILTIN)?;
            if r < 0 && stop_on_errors {
                return Ok(r);
            }
        }
        Ok(0)
    }

    fn rmmod_do_module(&mut self, id: ModId, flags: u32) -> Res<i32> {
        let name = self.ctx.name(id).to_string();
        let (mut pre, mut post, mut cmd) = (Vec::new(), Vec::new(), None);
        if !self.s.ignore_commands {
            (pre, post) = self.ctx.softdeps(id);
            cmd = self.ctx.remove_commands(id);
        }
        if cmd.is_none() && !self.s.ignore_loaded {
            match self.ctx.initstate(id) {
                Err(_) => {
                    if self.s.first_time {
                        self.log(&format!("Module {name} is not in kernel.\n"))?;
                        return Ok(-libc::ENOENT);
                    }
                    return Ok(0);
                }
                Ok(ModuleState::Builtin) => {
                    if flags & RMMOD_FLAG_IGNORE_BUILTIN != 0 {
                        return Ok(0);
                    }
                    self.log(&format!("Module {name} is builtin.\n"))?;
                    return Ok(-libc::ENOENT);
                }
                Ok(_) => {}
            }
        }
        // 1. Post-softdeps, in reverse order.
        self.rmmod_do_modlist(&post, false)?;
        // 2. Modules holding this one.
        if flags & RMMOD_FLAG_REMOVE_HOLDERS != 0 {
            let holders = self.ctx.holders(id).unwrap_or_default();
            let err = self.rmmod_do_modlist(&holders, true)?;
            if err < 0 {
                return Ok(err);
            }
        }
        // 3. The module itself, unless still referenced.
        if cmd.is_none() && !self.s.ignore_loaded && self.s.wait_msec == 0 {
            let usage = self.ctx.refcnt(id);
            if usage > 0 {
                if !self.s.quiet_inuse {
                    self.log(&format!("Module {name} is in use.\n"))?;
                }
                return Ok(-libc::EBUSY);
            }
        }
        let err = match &cmd {
            None => self.rmmod_do_remove_module(id)?,
            Some(cmd) => self.command_do(id, "remove", cmd, None)?,
        };
        if err < 0 {
            return Ok(err);
        }
        // 4. Dependencies nothing uses any more; errors do not count.
        if cmd.is_none() {
            for dep in self.ctx.dependencies(id) {
                if self.ctx.refcnt(dep) == 0 {
                    self.rmmod_do_remove_module(dep)?;
                }
            }
        }
        // 5. Pre-softdeps, in reverse order; errors do not count.
        self.rmmod_do_modlist(&pre, false)?;
        Ok(err)
    }

    /// modprobe's `command_do` (remove commands): `$CMDLINE_OPTS` replaced, shown, run.
    fn command_do(
        &mut self,
        id: ModId,
        kind: &str,
        command: &str,
        cmdline_opts: Option<&str>,
    ) -> Res<i32> {
        let name = self.ctx.name(id).to_string();
        let cmd = command.replace("$CMDLINE_OPTS", cmdline_opts.unwrap_or(""));
        self.show(&format!("{kind} {cmd}\n"));
        if self.s.dry_run {
            return Ok(0);
        }
        let _ = self.out.flush();
        match run_shell(&cmd, &name, &self.ctx.command_env) {
            Ok(0) => Ok(0),
            Ok(code) => {
                self.log(&format!("Error running {kind} command for {name}\n"))?;
                Ok(-code)
            }
            Err(_) => {
                self.log(&format!("Error running {kind} command for {name}\n"))?;
                Ok(-1)
            }
        }
    }

    fn rmmod(&mut self, alias: &str) -> Res<i32> {
        let list = match self.ctx.lookup(alias) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        let mut err = 0;
        if list.is_empty() {
            self.log(&format!("Module {alias} not found.\n"))?;
            err = -libc::ENOENT;
        }
        for id in list {
            let flags = if self.s.remove_holders {
                RMMOD_FLAG_REMOVE_HOLDERS
            } else {
                0
            };
            err = self.rmmod_do_module(id, flags)?;
            if err < 0 {
                break;
            }
        }
        Ok(err)
    }

    // ---- --show-modversions, --show-exports ----------------------------------------------

    fn show_symbols(&mut self, filename: &str, versions: bool) -> Res<i32> {
        if self.ctx.new_from_path(filename).is_err() {
            self.log(&format!("Module {filename} not found.\n"))?;
            return Ok(-libc::ENOENT);
        }
        // kmod_module_get_versions / kmod_module_get_symbols: the file opened as libkmod opens
        // it, then its ELF image read.
        let list = read_image(Path::new(filename), Compressions::ALL).and_then(|image| {
            let elf = KmodElf::new(&image[..])?;
            let symbols = if versions {
                elf.modversions()?
            } else {
                elf.symbols()?
            };
            let mut text = Vec::new();
            for symbol in symbols {
                text.extend_from_slice(format!("0x{:08x}\t", symbol.crc).as_bytes());
                text.extend_from_slice(symbol.name);
                text.push(b'\n');
            }
            Ok(text)
        });
        match list {
            Ok(text) => {
                let _ = self.out.write_all(&text);
                Ok(0)
            }
            Err(e) => {
                let what = if versions { "modversions" } else { "symbols" };
                self.log(&format!(
                    "could not get {what} of {filename}: {}\n",
                    strerror(e)
                ))?;
                Ok(-e)
            }
        }
    }

    // ---- -c ---------------------------------------------------------------------------------

    fn show_config(&mut self) -> Res<i32> {
        let mut text = self.ctx.config.dump();
        text.push_str("\n# End of configuration files. Dumping indexes now:\n\n");
        let mut text = text.into_bytes();
        for which in [Which::Alias, Which::Symbols] {
            text.extend_from_slice(&self.ctx.index.dump(which, b"alias "));
        }
        let _ = self.out.write_all(&text);
        Ok(0)
    }
}

/// `prepend_options_from_env`: `MODPROBE_OPTIONS` split at spaces (quotes group words and are
/// removed), placed before the command line's arguments. Bytes in, bytes out, as in kmod.
fn options_from_env(env: &[u8]) -> Vec<OsString> {
    let mut buf: Vec<u8> = env.to_vec();
    let mut out: Vec<OsString> = Vec::new();
    let word = |w: &[u8]| OsString::from_vec(w.to_vec());
    let mut start = 0usize;
    let mut quote: Option<usize> = None;
    let mut s = 0usize;
    while s < buf.len() {
        match quote {
            None => {
                if buf[s] == b' ' {
                    out.push(word(&buf[start..s]));
                    start = s + 1;
                } else if buf[s] == b'"' || buf[s] == b'\'' {
                    quote = Some(s);
                }
            }
            Some(q) => {
                if buf[s] == buf[q] {
                    if q == start {
                        out.push(word(&buf[start + 1..s]));
                        start = s + 1;
                    } else {
                        // Drop both quote characters and keep going.
                        buf.remove(s);
                        buf.remove(q);
                        s -= 2;
                    }
                    quote = None;
                }
            }
        }
        s += 1;
    }
    if start < s.min(buf.len()) {
        out.push(word(&buf[start..]));
    }
    out
}

/// `options_from_env` for the `tool_args` fuzz target: the words modprobe takes from
/// `MODPROBE_OPTIONS`.
#[doc(hidden)]
pub fn fuzz_options_from_env(env: &[u8]) -> Vec<OsString> {
    options_from_env(env)
}

/// `parse_ulong` for the `tool_args` fuzz target: modprobe's reading of a `--wait` value.
#[doc(hidden)]
pub fn fuzz_wait_value(arg: &str) -> Option<u64> {
    parse_ulong(arg)
}

/// `options_from_array`: the module's parameters from the command line, joined by spaces; a
/// value with a space that is not already quoted gets double quotes.
fn options_from_array(args: &[String]) -> Option<String> {
    let mut opts: Option<String> = None;
    for a in args.iter().skip(1) {
        let quoted = match a.find('=') {
            Some(eq) => {
                let value = &a[eq + 1..];
                if !value.starts_with('"') && !value.starts_with('\'') && value.contains(' ') {
                    format!("{}\"{}\"", &a[..=eq], value)
                } else {
                    a.clone()
                }
            }
            None => a.clone(),
        };
        match &mut opts {
            Some(o) => {
                o.push(' ');
                o.push_str(&quoted);
            }
            None => opts = Some(quoted),
        }
    }
    opts
}

/// Runs `modprobe` with `args` (`args[0]` is the name it was invoked as) against `kernel`., writing to `out` and `err`; returns the exit code.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "modprobe".into());
    let name = short_name(&argv0).to_string();
    let mut env_options = std::env::var("MODPROBE_OPTIONS").ok();
    // argv[0], the words of MODPROBE_OPTIONS, then the rest of the command line.
    let mut argv: Vec<OsString> = vec![args.first().cloned().unwrap_or_else(|| "modprobe".into())];
    if let Some(env) = std::env::var_os("MODPROBE_OPTIONS") {
        argv.extend(options_from_env(env.as_bytes()));
    }
    argv.extend(args.iter().skip(1).cloned());

    let mut getopt = Getopt::new(&argv, SHORT_OPTIONS, LONG_OPTIONS);
    let log = Log::new(&name);
    let mut s = Settings {
        verbose: DEFAULT_VERBOSE,
        log_priority: prio::CRIT,
        ..Settings::default()
    };
    let mut config_paths: Vec<PathBuf> = Vec::new();
    let mut root: Option<String> = None;
    let mut kversion: Option<String> = None;
    let (mut use_all, mut do_remove, mut do_show_config) = (false, false, false);
    let (mut do_show_modversions, mut do_show_exports) = (false, false);
    let mut append_env = |v: &str| {
        env_options = Some(match env_options.take() {
            Some(old) => format!("{old} {v}"),
            None => v.to_string(),
        });
    };
    for o in getopt.by_ref() {
        let Ok(o) = o.map_err(|e| e.report(err)) else {
            return 1;
        };
        // The module tools' internals work on text: arguments are converted here.
        let (c, arg) = (o.val, String::from_utf8_lossy(o.arg_bytes()).into_owned());
        match c {
            OPT_FORCE_VERMAGIC => s.strip_vermagic = true,
            OPT_FORCE_MODVERSION => s.strip_modversion = true,
            OPT_FIRST_TIME => s.first_time = true,
            OPT_SHOW_MODVERSIONS => do_show_modversions = true,
            OPT_REMOVE_HOLDERS => s.remove_holders = true,
            OPT_SHOW_EXPORTS => do_show_exports = true,
            c => match char::from_u32(c).unwrap_or('?') {
                'a' => {
                    s.log_priority = prio::WARNING;
                    use_all = true;
                }
                'r' => do_remove = true,
                'w' => match parse_ulong(&arg) {
                    Some(v) => s.wait_msec = v,
                    None => {
                        log.print(err, prio::ERR, format!("unexpected wait value '{arg}'.\n"));
                        return 1;
                    }
                },
                'i' => s.ignore_commands = true,
                'b' => s.use_blacklist = true,
                'f' => s.force = true,
                'D' => {
                    s.ignore_loaded = true;
                    s.dry_run = true;
                    s.do_show = true;
                }
                'R' => s.lookup_only = true,
                'c' => do_show_config = true,
                'n' => s.dry_run = true,
                'C' => {
                    config_paths.push(PathBuf::from(o.arg.unwrap_or_default()));
                    append_env("-C");
                    append_env(&arg);
                }
                'd' => root = Some(arg),
                'S' => kversion = Some(arg),
                's' => append_env("-s"),
                'q' => {
                    append_env("-q");
                    s.verbose = prio::EMERG;
                }
                'v' => {
                    append_env("-v");
                    s.verbose += 1;
                }
                'V' => return crate::tool_log::print_version(out),
                'h' => {
                    let _ = out.write_all(help(&name).as_bytes());
                    return 0;
                }
                _ => return 1,
            },
        }
    }
    let args: Vec<String> = getopt.operands_text();
    if !do_show_config && args.is_empty() {
        log.print(err, prio::ERR, "missing parameters. See -h.\n");
        return 1;
    }
    let dirname = if root.is_some() || kversion.is_some() {
        let kversion = match kversion {
            Some(v) => v,
            None => match kernel.release() {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!(
                        "uname() failed: {}\n",
                        strerror(e.raw_os_error().unwrap_or(libc::EIO))
                    );
                    log.print(err, prio::ERR, &msg);
                    return 1;
                }
            },
        };
        Some(format!(
            "{}/lib/modules/{}",
            root.unwrap_or_default(),
            kversion
        ))
    } else {
        None
    };
    let paths = (!config_paths.is_empty()).then_some(config_paths.as_slice());
    let mut ctx = Context::new(
        dirname.as_deref().map(str::as_bytes),
        paths,
        kernel,
        log,
        err,
    );
    ctx.log.setup_kmod_log(s.verbose);
    if let Some(v) = env_options {
        ctx.command_env.push(("MODPROBE_OPTIONS".into(), v));
    }
    let mut mp = Modprobe {
        ctx: &mut ctx,
        s: &s,
        out,
    };
    let result: Res<i32> = if do_show_config {
        mp.show_config()
    } else if do_show_modversions || do_show_exports {
        mp.show_symbols(&args[0], do_show_modversions)
    } else if do_remove || use_all {
        // Each name in turn: the result is the last failure; a fatal error stops at once.
        let mut last = 0;
        args.iter()
            .try_for_each(|a| {
                let v = if do_remove {
                    mp.rmmod(a)?
                } else {
                    mp.insmod(a, None)?
                };
                if v < 0 {
                    last = v;
                }
                Ok(())
            })
            .map(|()| last)
    } else {
        let opts = options_from_array(&args);
        mp.insmod(&args[0], opts.as_deref())
    };
    let _ = out_flush(&mut mp);
    match result {
        Ok(e) if e >= 0 => 0,
        _ => 1,
    }
}

fn out_flush(mp: &mut Modprobe) -> std::io::Result<()> {
    mp.out.flush()
}

/// `strtoul(s, &end, 0)` that must consume all of a non-empty `s`: C-locale white space, a
/// sign, then `0x` and hexadecimal digits, `0` and octal ones, or decimal ones. As in C, a `-`
/// negates the value modulo 2^64 and a value out of range is `ULONG_MAX`.
fn parse_ulong(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|&&c| kmodlab_cnum::is_space(c)).count();
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let hex = b.get(i) == Some(&b'0')
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    let (radix, digits) = match b.get(i) {
        _ if hex => (16, &b[i + 2..]),
        Some(b'0') => (8, &b[i..]),
        _ => (10, &b[i..]),
    };
    if digits.is_empty() || !digits.iter().all(|&c| char::from(c).is_digit(radix)) {
        return None;
    }
    let value = digits.iter().try_fold(0u64, |v, &c| {
        v.checked_mul(u64::from(radix))?
            .checked_add(u64::from(char::from(c).to_digit(radix)?))
    });
    Some(match value {
        None => u64::MAX,
        Some(v) if negative => v.wrapping_neg(),
        Some(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_parameters_are_quoted_like_kmod() {
        let args: Vec<String> = ["m", "a=1", "label=two words", "q=\"x y\"", "flag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            options_from_array(&args).as_deref(),
            Some("a=1 label=\"two words\" q=\"x y\" flag")
        );
        assert_eq!(options_from_array(&args[..1]), None);
    }

    #[test]
    fn modprobe_options_from_the_environment() {
        assert_eq!(options_from_env(b"-q -C /etc"), ["-q", "-C", "/etc"]);
        // As in kmod, the space after a quoted word makes an empty argument.
        assert_eq!(options_from_env(b"\"-C\" x"), ["-C", "", "x"]);
        assert_eq!(options_from_env(b"a\"b c\"d e"), ["ab cd", "e"]);
        // Bytes are kept as they are.
        assert_eq!(
            options_from_env(b"-C \xff/d"),
            [OsString::from("-C"), OsString::from_vec(b"\xff/d".to_vec())]
        );
    }

    #[test]
    fn wait_values() {
        assert_eq!(parse_ulong("100"), Some(100));
        assert_eq!(parse_ulong("0x10"), Some(16));
        assert_eq!(parse_ulong("010"), Some(8));
        assert_eq!(parse_ulong(""), None);
        assert_eq!(parse_ulong("1s"), None);
    }

    /// Found by the `tool_args` fuzz target, which checks `--wait` values against the C
    /// library's `strtoul`: a negative value was refused where kmod takes it modulo 2^64, and
    /// so was a value out of range, which kmod takes as `ULONG_MAX`. White space before the
    /// number is C's, not Unicode's.
    #[test]
    fn wait_value_negative_or_out_of_range_is_read_as_strtoul_reads_it() {
        assert_eq!(parse_ulong("-999"), Some(999u64.wrapping_neg()));
        assert_eq!(parse_ulong("-0x10"), Some(16u64.wrapping_neg()));
        assert_eq!(parse_ulong("99999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_ulong("-99999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_ulong(" \x0b+0X1f"), Some(31));
        assert_eq!(parse_ulong("\u{a0}5"), None);
        assert_eq!(parse_ulong("0x"), None);
        assert_eq!(parse_ulong("09"), None);
        assert_eq!(parse_ulong("0"), Some(0));
        assert_eq!(parse_ulong("-"), None);
        assert_eq!(parse_ulong(" "), None);
        assert_eq!(parse_ulong("5 "), None);
    }
}
