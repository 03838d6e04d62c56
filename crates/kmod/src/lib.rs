//! The module tools, compatible with kmod 30 (Debian bookworm): same flags, output, messages and
//! exit codes. Every tool has the same shape: `TOOL::run(args, kernel, out, err)`, where
//! `args[0]` is the name it was invoked as, `kernel` the kernel it works on (the host's, or a
//! fake one in tests), and `out`/`err` its standard output and error; it returns the exit code.
//! They are front ends on one libkmod layer, the `kmodlab-libkmod` crate (re-exported here):
//! [`kmod_context`] (lookups, dependencies, configuration, insertion and removal), [`indexes`]
//! (the `.bin` indexes), [`kernel_state`] (sysfs and the syscalls) and [`tool_log`] (messages
//! and the version line).
#![deny(missing_docs)]

pub mod depmod;
pub use kmodlab_getopt as getopt;
pub use kmodlab_libkmod::{
    indexes, kernel_state, kmod_context, modprobe_config, module_insert, tool_log,
};
pub mod insmod;
pub mod lsmod;
pub mod modinfo;
pub mod modprobe;
pub mod rmmod;

use std::ffi::OsString;
use std::io::Write;

/// The tools, by the name they are invoked as.
pub const TOOLS: [&str; 6] = ["insmod", "rmmod", "lsmod", "modinfo", "modprobe", "depmod"];

/// A tool's entry point: arguments, the kernel, standard output and standard error.
pub type Run = fn(&[OsString], &kernel_state::Kernel, &mut dyn Write, &mut dyn Write) -> i32;

/// The tool called `name` (one of [`TOOLS`]).
pub fn tool(name: &str) -> Option<Run> {
    Some(match name {
        "insmod" => insmod::run,
        "rmmod" => rmmod::run,
        "lsmod" => lsmod::run,
        "modinfo" => modinfo::run,
        "modprobe" => modprobe::run,
        "depmod" => depmod::run,
        _ => return None,
    })
}

/// Runs the tool `name` (one of [`TOOLS`]) on the host's kernel with the process's standard
/// streams; `None` when `name` is not a module tool. modinfo buffers its output as C's stdio
/// does and depmod in large blocks, as kmod's do.
pub fn run(name: &str, args: Vec<OsString>) -> Option<i32> {
    Some(match name {
        "modinfo" => modinfo::main(args),
        "depmod" => depmod::main(args),
        _ => {
            let run = tool(name)?;
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            run(
                &args,
                &kernel_state::Kernel::host(),
                &mut stdout.lock(),
                &mut stderr.lock(),
            )
        }
    })
}
