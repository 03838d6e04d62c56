//! `insmod`, as kmod 30 has it.

use std::ffi::OsString;

/// Runs `insmod` with `args` (`args[0]` is the name it was invoked as); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("insmod: not implemented yet");
    1
}
