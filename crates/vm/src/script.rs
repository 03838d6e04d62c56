//! Command scripts: boot, run programs in the guest one after another (the module tools, or
//! anything the initramfs holds), power off. Each command's output and the kernel messages it
//! caused come back, with the crash reports of the whole session.

use crate::guest::{BootSpec, Guest, InfraError, Step};
use kmodlab_events::Event;
use kmodlab_proto::{Reply, Request};
use std::time::Duration;

pub use kmodlab_events::{CommandResult, ScriptResult};

/// Records the answer to an exec request in `r`: how the program ended (`Exited`, with its
/// output and the kernel messages meanwhile) or why it did not run (`Error`); any other reply
/// is given back.
pub(crate) fn record_exec(r: &mut CommandResult, reply: Reply) -> Option<Reply> {
    match reply {
        Reply::Exited {
            code,
            signal,
            stdout,
            stderr,
            log,
        } => {
            r.exit_code = code;
            r.signal = signal.map(kmodlab_sys::signal_name);
            r.stdout = stdout;
            r.stderr = stderr;
            r.log = log;
            None
        }
        Reply::Error { message } => {
            r.error = Some(message);
            None
        }
        other => Some(other),
    }
}

/// Boots `spec` and runs `commands` in order, each within `step`; stops at the first command
/// without a result (a hang or a dead VM). With `stop_on`, a command is stopped (SIGTERM) once
/// its output contains that text.
pub fn run_script(
    spec: &BootSpec,
    commands: &[Vec<String>],
    stop_on: Option<&str>,
    step: Duration,
    shutdown: Duration,
    sink: &mut dyn FnMut(&Event),
) -> Result<ScriptResult, InfraError> {
    let mut guest = Guest::boot(spec, sink)?;
    let kernel = guest.kernel.clone();
    let mut results = Vec::new();
    let mut alive = true;
    let mut timed_out = false;
    for argv in commands {
        let mut r = CommandResult::new(argv.clone());
        let request = Request::Exec {
            argv: argv.clone(),
            stop_on: stop_on.map(String::from),
        };
        match guest.request(&request, step) {
            Step::Reply(reply) => {
                if let Some(other) = record_exec(&mut r, reply) {
                    r.error = Some(format!("unexpected reply {other:?}"));
                }
            }
            Step::Timeout => {
                r.error = Some(format!("timed out after {step:?}"));
                timed_out = true;
                alive = false;
            }
            Step::Gone(why) => {
                r.error = Some(why);
                alive = false;
            }
            Step::Broken(why) => return Err(guest.abort(why)),
        }
        results.push(r);
        if !alive {
            break;
        }
    }
    if alive {
        guest.power_off(shutdown);
    } else {
        guest.kill();
    }
    // QEMU going away is the kernel's doing only when the kernel said it panicked.
    let exit = guest.exited_by_itself().map(String::from);
    let died = match results.last() {
        Some(last) if !alive && !timed_out => {
            let during = format!("`{}`", last.argv.join(" "));
            Some(guest.infra(crate::session::qemu_died(&during, exit.as_deref())))
        }
        _ => None,
    };
    let (reports, _) = guest.finish();
    let panicked = reports
        .iter()
        .any(|r| r.kind.severity() == kmodlab_crash::Severity::Panic);
    if let (Some(e), false) = (died, panicked) {
        return Err(e);
    }
    Ok(ScriptResult {
        commands: results,
        reports,
        timed_out,
        kernel,
        run_dir: spec.run_dir.clone(),
    })
}
