//! `insmod`, as kmod 30 has it: `insmod [-f] FILE [ARGS...]` loads one module file with the
//! arguments joined by spaces, and words a failure as kmod does
//! (`insmod: ERROR: could not insert module X: Unknown symbol in module`).
//!
//! Unlike kmod 30, and like kmod 31 and later, a compressed module is handed to the kernel to
//! decompress when `/sys/module/compression` names its compression.

use std::ffi::OsString;
use std::io::Write;

use crate::getopt::{long, short_name, Getopt, HasArg, LongOpt};
use crate::kernel_state::Kernel;
use crate::kmod_context::Context;
use crate::module_insert::ForceFlags;
use crate::tool_log::{prio, strerror, Log};

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "psfVh";

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("version", HasArg::No, 'V' as u32),
    long("help", HasArg::No, 'h' as u32),
];

/// insmod's wording of a load failure (`mod_strerror`).
pub fn mod_strerror(errno: i32) -> String {
    kmodlab_sys::insmod_strerror(errno)
}

/// Runs `insmod` with `args` (`args[0]` is the name it was invoked as) against `kernel`., writing to `out` and `err`; returns the exit code.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "insmod".into());
    let name = short_name(&argv0).to_string();
    let log = Log::new(&name);
    let mut getopt = Getopt::new(args, SHORT_OPTIONS, LONG_OPTIONS);
    let mut force = ForceFlags::default();
    for opt in getopt.by_ref() {
        let Ok(opt) = opt.map_err(|e| e.report(err)) else {
            return 1;
        };
        match char::from_u32(opt.val) {
            Some('p') | Some('s') => {}
            Some('f') => {
                force.modversion = true;
                force.vermagic = true;
            }
            Some('h') => {
                let _ = write!(
                    out,
                    "Usage:\n\t{name} [options] filename [args]\nOptions:\n\
                     \t-V, --version     show version\n\t-h, --help        show this help\n"
                );
                return 0;
            }
            Some('V') => return crate::tool_log::print_version(out),
            _ => return 1,
        }
    }
    // The module tools' internals work on text: operands are converted here.
    let operands: Vec<String> = getopt.operands_text();
    let Some(filename) = operands.first() else {
        log.print(err, prio::ERR, "missing filename.\n");
        return 1;
    };
    if filename == "-" {
        log.print(
            err,
            prio::ERR,
            "this tool does not support loading from stdin!\n",
        );
        return 1;
    }
    let opts = operands[1..].join(" ");

    let mut ctx = Context::new(None, Some(&[]), kernel, Log::new(&name), err);
    let id = match ctx.new_from_path(filename) {
        Ok(id) => id,
        Err(e) => {
            let msg = format!("could not load module {filename}: {}\n", strerror(-e));
            log.print(ctx.err, prio::ERR, &msg);
            return 1;
        }
    };
    match ctx.insert_module(id, force, &opts) {
        Ok(()) => 0,
        Err(e) => {
            let msg = format!("could not insert module {filename}: {}\n", mod_strerror(-e));
            log.print(ctx.err, prio::ERR, &msg);
            1
        }
    }
}
