//! The commands of the kmodlab binary. Each is a function of its options, given as values (no
//! environment variables set on the way), that runs the libraries, prints through `report`,
//! and returns the exit code scripts see ([`exit`]): the binary only parses arguments and
//! dispatches.
#![deny(missing_docs)]

pub mod args;
mod course_commands;
mod lab_commands;
mod tools;

pub use course_commands::{lab_check, lab_list, lab_start, LabCheckArgs};
pub use kmodlab_events::exit;
pub use lab_commands::{
    exec, gdb, run, shell, test, watch, ExecArgs, Format, GdbArgs, RunArgs, ShellArgs, TestArgs,
    WatchArgs,
};
pub use tools::{build, kernel_build, kernel_list, new, oops, OopsArgs};

use kmodlab_lab::LabError;
use kmodlab_report::TerminalSafe;
use std::io::Write;
use std::path::PathBuf;

/// The kernel a command boots and builds for: `--kernel`, `--kdir` and `--lab-kernel`.
#[derive(Clone, Debug, Default)]
pub struct KernelChoice {
    /// The image (default: see `kmodlab_kbuild::select`).
    pub kernel: Option<PathBuf>,
    /// The build tree.
    pub kdir: Option<PathBuf>,
    /// A lab kernel for every module, whatever its spec or sources ask for.
    pub lab_kernel: Option<kmodlab_lab::KernelKind>,
}

impl KernelChoice {
    /// The kernel kind for modules that ask for `wanted`: `--lab-kernel` when given.
    pub fn kind(&self, wanted: kmodlab_lab::KernelKind) -> kmodlab_lab::KernelKind {
        self.lab_kernel.unwrap_or(wanted)
    }
}

/// Says what went wrong and returns its exit code.
fn fail(e: &LabError) -> u8 {
    eprintln!("kmodlab: {e}");
    e.exit_code() as u8
}

/// The console's last lines after an infrastructure error, escaped (they come from the guest).
fn print_console_tail(lines: &[String]) {
    let mut err = TerminalSafe::new(std::io::stderr().lock());
    for l in lines {
        // Standard error gone: nothing left to tell.
        if writeln!(err, "  | {l}").is_err() {
            return;
        }
    }
}

/// Prints a command's result on standard output: `value` as pretty JSON with `json`, else what
/// `human` writes; returns `code`, or an error's ([`written`]).
fn print<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    human: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    what: &str,
    code: u8,
) -> u8 {
    let mut out = std::io::stdout().lock();
    let result = if json {
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        human(&mut out)
    };
    written(result, what, code)
}

/// The exit code once the result was written: `code`, unless writing failed for another reason
/// than a reader that went away (a closed pipe ends quietly, as `head` expects), which is an
/// infrastructure error saying so.
fn written(result: std::io::Result<()>, what: &str, code: u8) -> u8 {
    match result {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("kmodlab: writing {what}: {e}");
            exit::INFRA
        }
    }
}
