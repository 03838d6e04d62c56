//! `rmmod`, as kmod 30 has it: `rmmod [-f] [-s] [-v] NAME|PATH...` unloads modules. Before
//! asking the kernel, and unless `-f`, it refuses a module that is built in, not loaded, or in
//! use, naming the modules that hold it (`rmmod: ERROR: Module X is in use by: Y Z`).

use std::ffi::OsString;
use std::io::Write;

use crate::getopt::{long, short_name, Getopt, HasArg, LongOpt};
use crate::kernel_state::Kernel;
use crate::kmod_context::{Context, ModId, ModuleState};
use crate::tool_log::{prio, strerror, Log};

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "fsvVwh";

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("force", HasArg::No, 'f' as u32),
    long("syslog", HasArg::No, 's' as u32),
    long("verbose", HasArg::No, 'v' as u32),
    long("version", HasArg::No, 'V' as u32),
    long("help", HasArg::No, 'h' as u32),
];

/// `check_module_inuse`: refuses (with kmod's message) a module that is built in, not loaded,
/// held by others or still referenced. Returns a negative errno to skip the module.
fn check_module_inuse(ctx: &mut Context, id: ModId) -> i32 {
    let name = ctx.name(id).to_string();
    match ctx.initstate(id) {
        Ok(ModuleState::Builtin) => {
            let msg = format!("Module {name} is builtin.\n");
            ctx.log.print(ctx.err, prio::ERR, &msg);
            return -libc::ENOENT;
        }
        Err(_) => {
            let msg = format!("Module {name} is not currently loaded\n");
            ctx.log.print(ctx.err, prio::ERR, &msg);
            return -libc::ENOENT;
        }
        Ok(_) => {}
    }
    if let Some(holders) = ctx.holders(id) {
        if !holders.is_empty() {
            let mut msg = format!("Module {name} is in use by:");
            for h in holders {
                msg.push(' ');
                msg.push_str(&ctx.name(h));
            }
            msg.push('\n');
            ctx.log.print(ctx.err, prio::ERR, &msg);
            return -libc::EBUSY;
        }
    }
    let refcnt = ctx.refcnt(id);
    if refcnt > 0 {
        let msg = format!("Module {name} is in use\n");
        ctx.log.print(ctx.err, prio::ERR, &msg);
        return -libc::EBUSY;
    }
    if refcnt == -(libc::ENOENT as i64) {
        ctx.log
            .print(ctx.err, prio::ERR, "Module unloading is not supported\n");
    }
    refcnt.clamp(i32::MIN as i64, 0) as i32
}

/// Runs `rmmod` with `args` (`args[0]` is the name it was invoked as) against `kernel`., writing to `out` and `err`; returns the exit code.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rmmod".into());
    let name = short_name(&argv0).to_string();
    let mut getopt = Getopt::new(args, SHORT_OPTIONS, LONG_OPTIONS);
    let mut force = false;
    let mut verbose = prio::ERR;
    for opt in getopt.by_ref() {
        let Ok(opt) = opt.map_err(|e| e.report(err)) else {
            return 1;
        };
        match char::from_u32(opt.val) {
            Some('f') => force = true,
            // Syslog is not available here; messages stay on stderr.
            Some('s') => {}
            Some('v') => verbose += 1,
            // `-w` is accepted and ignored, as kmod 30 does.
            Some('w') => {}
            Some('h') => {
                let _ = write!(
                    out,
                    "Usage:\n\t{name} [options] modulename ...\nOptions:\n\
                     \t-f, --force       forces a module unload and may crash your\n\
                     \t                  machine. This requires Forced Module Removal\n\
                     \t                  option in your kernel. DANGEROUS\n\
                     \t-s, --syslog      print to syslog, not stderr\n\
                     \t-v, --verbose     enables more messages\n\
                     \t-V, --version     show version\n\
                     \t-h, --help        show this help\n"
                );
                return 0;
            }
            Some('V') => return crate::tool_log::print_version(out),
            _ => return 1,
        }
    }
    // The module tools' internals work on text: operands are converted here.
    let operands: Vec<String> = getopt.operands_text();
    let log = Log::new(&name);
    if operands.is_empty() {
        log.print(err, prio::ERR, "missing module name.\n");
        return 1;
    }
    let mut ctx = Context::new(None, Some(&[]), kernel, log, err);
    ctx.log.setup_kmod_log(verbose);
    let mut failures = 0;
    for arg in &operands {
        let id = if std::fs::metadata(arg).is_ok() {
            ctx.new_from_path(arg)
        } else {
            Ok(ctx.new_from_name(arg))
        };
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                let msg = format!("could not use module {arg}: {}\n", strerror(-e));
                ctx.log.print(ctx.err, prio::ERR, &msg);
                break;
            }
        };
        if !force && check_module_inuse(&mut ctx, id) < 0 {
            failures += 1;
            continue;
        }
        if let Err(e) = ctx.remove_module(id, force, false) {
            let msg = format!("could not remove module {arg}: {}\n", strerror(-e));
            ctx.log.print(ctx.err, prio::ERR, &msg);
            failures += 1;
        }
    }
    i32::from(failures != 0)
}
