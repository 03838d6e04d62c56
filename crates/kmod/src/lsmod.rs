//! `lsmod`, as kmod 30 has it.

use std::ffi::OsString;

/// Runs `lsmod` with `args` (`args[0]` is the name it was invoked as); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("lsmod: not implemented yet");
    1
}
