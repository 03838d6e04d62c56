//! `lsmod`, as kmod 30 has it: the loaded modules in `/proc/modules` order, as
//! `Module                  Size  Used by` followed by one `%-19s %8ld  %d` line per module
//! and its holders (`/sys/module/NAME/holders`) joined by commas. Sizes come from
//! `/sys/module/NAME/coresize` and use counts from `/sys/module/NAME/refcnt`, as libkmod reads
//! them.

use std::ffi::OsString;
use std::io::Write;

use crate::kernel_state::Kernel;
use crate::kmod_context::Context;
use crate::tool_log::{site, strerror, Log};

/// Runs `lsmod` with `args` (`args[0]` is the name it was invoked as) against `kernel` (whose `/proc/modules` and `/sys/module` may be fakes)., writing to `out` and `err`; returns the exit code.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.len() != 1 {
        let argv0 = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lsmod".into());
        let _ = writeln!(err, "Usage: {argv0}");
        return 1;
    }
    let log = Log::new("lsmod");
    let names = match kernel.loaded_modules() {
        Ok(names) => names,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            log.libkmod(
                err,
                crate::tool_log::prio::ERR,
                site("libkmod-module.c", 1725, "kmod_module_new_from_loaded"),
                format!("could not open /proc/modules: {}\n", strerror(errno)),
            );
            let _ = writeln!(
                err,
                "Error: could not get list of modules: {}",
                strerror(errno)
            );
            return 1;
        }
    };
    let mut ctx = Context::new(None, Some(&[]), kernel, log, err);
    let mut text = String::from("Module                  Size  Used by\n");
    for name in names {
        let id = ctx.new_from_name(&name);
        let use_count = ctx.refcnt(id);
        let size = kernel.size(&ctx.name(id));
        text.push_str(&format!("{:<19} {:>8}  {}", ctx.name(id), size, use_count));
        let holders = ctx.holders(id).unwrap_or_default();
        for (i, h) in holders.into_iter().enumerate() {
            text.push(if i == 0 { ' ' } else { ',' });
            text.push_str(&ctx.name(h));
        }
        text.push('\n');
    }
    let _ = out.write_all(text.as_bytes());
    0
}
