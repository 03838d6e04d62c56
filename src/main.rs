//! kmodlab: the Linux kernel-module lab in one program.
//!
//! A thin binary: it picks a mode from argv[0] and the arguments and dispatches: to the guest
//! agent, the module tools, dmesg, or a command of `kmodlab_cli` (which returns the exit code of
//! the one table, `kmodlab_events::exit`).

use std::process::ExitCode;

/// The identity of the code this binary runs in a guest (see `build.rs`), as a marker the warm
/// states' key finds in the agent binary (`kmodlab_vm::warm::guest_code_identity`).
#[used]
static GUEST_CODE: &str = concat!("kmodlab-guest-code:", env!("KMODLAB_GUEST_CODE"), "\n");

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    // PID 1 of a guest kmodlab booted: the agent (never on the host, nor as PID 1 of a
    // container, whatever the binary is called).
    if kmodlab_agent::is_agent() {
        kmodlab_agent::run();
    }
    // Invoked as a module tool (a link named insmod, modinfo, ...), or as `kmodlab TOOL ...`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = kmodlab_kmod::run(&name, args.clone()) {
        return ExitCode::from(code as u8);
    }
    if name == "dmesg" {
        return ExitCode::from(kmodlab_dmesg::main(args) as u8);
    }
    if let Some(tool) = args.get(1).and_then(|a| a.to_str()) {
        if tool == "dmesg" {
            return ExitCode::from(kmodlab_dmesg::main(args[1..].to_vec()) as u8);
        }
        if kmodlab_kmod::TOOLS.contains(&tool) {
            if let Some(code) = kmodlab_kmod::run(tool, args[1..].to_vec()) {
                return ExitCode::from(code as u8);
            }
        }
    }
    ExitCode::from(kmodlab_cli::args::main())
}
