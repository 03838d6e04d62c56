//! The module tools, compatible with kmod 30 (Debian bookworm): same flags, output, messages and
//! exit codes. Each tool is `TOOL::main(args)`, where `args[0]` is the name it was invoked as; it
//! writes to the process's stdout and stderr and returns the exit code.
#![deny(missing_docs)]

pub mod common_modinfo;
pub mod depmod;
pub mod fnmatch;
pub use kmodlab_getopt as getopt;
pub mod insmod;
pub mod kernel_state;
pub mod kmod_context;
pub mod lsmod;
pub mod modinfo;
pub mod modprobe;
pub mod modprobe_config;
pub mod module_insert;
pub mod modules_dir;
pub mod rmmod;
pub mod tool_log;

use std::ffi::OsString;

/// The tools, by the name they are invoked as.
pub const TOOLS: [&str; 6] = ["insmod", "rmmod", "lsmod", "modinfo", "modprobe", "depmod"];

/// Runs the tool `name` (one of [`TOOLS`]); `None` when `name` is not a module tool.
pub fn run(name: &str, args: Vec<OsString>) -> Option<i32> {
    Some(match name {
        "insmod" => insmod::main(args),
        "rmmod" => rmmod::main(args),
        "lsmod" => lsmod::main(args),
        "modinfo" => modinfo::main(args),
        "modprobe" => modprobe::main(args),
        "depmod" => depmod::main(args),
        _ => return None,
    })
}
