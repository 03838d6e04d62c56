//! A module under gdb: the guest with QEMU's gdb stub, the host's gdb attached to it with the
//! kernel's symbols (its vmlinux, or a symbol table made from the guest's `/proc/kallsyms`), and the module loaded so that gdb stops in its init function, with the
//! module's symbols at their real section addresses, before its first line runs.
//!
//! The order matters. Once the agent is ready the guest is stopped (QMP `stop`), and only then
//! asked to load the module: nothing of the load runs until gdb, attached and set up, continues
//! the guest. gdb's setup (`gdb_setup.py`, written into the run directory) waits in the kernel's
//! module loader for the module, gives gdb its symbols from the addresses the kernel chose, and
//! breaks in its init function; its comments say how. The user's gdb arguments come after it.
//! When the load ends, the module is unloaded (a breakpoint in its exit function stops there).
//! gdb owns the terminal; while it runs, kmodlab keeps draining the guest's console and the
//! agent's replies, and ends when gdb ends, taking QEMU with it.

use crate::guest::{gdb_socket, BootSpec, Guest, InfraError};
use crate::machine::VmMessage;
use crate::shell::{HostEvent, HostLink};
use kmodlab_crash::CrashReport;
use kmodlab_events::Event;
use kmodlab_proto::{CallStatus, Envelope, Reply, Request};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// gdb's setup script (see its comments).
const SETUP: &str = include_str!("gdb_setup.py");

/// The name of the setup script in the run directory.
pub const SETUP_FILE: &str = "gdb-setup.py";

/// The kernel argument that keeps the kernel where vmlinux says it is.
pub const NOKASLR: &str = "nokaslr";

/// How often the loop looks at gdb when nothing else happens.
const TICK: Duration = Duration::from_millis(100);
/// How long a request may take to be written to the guest.
const SEND_WITHIN: Duration = Duration::from_secs(10);

/// Where gdb gets the kernel's symbols from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSymbols {
    /// A vmlinux with DWARF: names, types and source lines.
    Vmlinux(PathBuf),
    /// A symbol table made from the guest's `/proc/kallsyms` once it runs
    /// ([`kmodlab_symbolize::elf_from_kallsyms`]), written into the run directory as
    /// [`KALLSYMS_FILE`]: names only.
    Kallsyms,
}

/// The symbol table made from `/proc/kallsyms`, in the run directory.
pub const KALLSYMS_FILE: &str = "kallsyms.elf";

/// What to debug.
pub struct GdbPlan {
    /// The guest: [`BootSpec::gdb_stub`] on, [`NOKASLR`] among its kernel arguments, the module
    /// among its modules.
    pub boot: BootSpec,
    /// The host's gdb.
    pub gdb: PathBuf,
    /// The kernel's symbols.
    pub symbols: KernelSymbols,
    /// The module's name as the kernel knows it.
    pub module_name: String,
    /// The module's file name in the guest's module directory.
    pub module_file: String,
    /// The .ko on the host, with its debug info, of every module gdb gives symbols to when it
    /// loads, by module name: the module itself and the others in the guest.
    pub modules: Vec<(String, PathBuf)>,
    /// Parameters, one `name=value` each.
    pub params: Vec<String>,
    /// gdb's options before kmodlab's (`-iex` commands, ...).
    pub gdb_options: Vec<String>,
    /// The user's arguments to gdb, after kmodlab's.
    pub gdb_args: Vec<String>,
    /// Where the host side posts signals ([`HostEvent::Signal`]).
    pub link: HostLink,
    /// Set once gdb runs: from then on a Ctrl-C is gdb's.
    pub gdb_started: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How a gdb session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum GdbEnd {
    /// gdb exited with this status (128 + N when killed by signal N).
    Exited(i32),
    /// kmodlab got this signal and ended gdb.
    Signal(i32),
}

/// A string as a Python literal (the setup script's settings).
fn python_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The setup script: its settings, then the script. `module` is the module `kmodlab gdb`
/// stops in (`None` for `kmodlab shell --gdb`); `modules` are the .ko files by module name.
pub fn setup_script(
    socket: &std::path::Path,
    module: Option<&str>,
    modules: &[(String, PathBuf)],
) -> String {
    let known: serde_json::Map<String, serde_json::Value> = modules
        .iter()
        .map(|(name, ko)| (name.clone(), ko.display().to_string().into()))
        .collect();
    format!(
        "KMODLAB_SOCKET = {}\nKMODLAB_MODULE = {}\nKMODLAB_MODULES = {}\n\n{SETUP}",
        python_string(&socket.display().to_string()),
        module.map_or_else(|| "None".to_string(), python_string),
        serde_json::Value::Object(known),
    )
}

/// The kernel's symbol file for gdb: the vmlinux, or the table made in `run_dir`.
pub fn symbol_file(symbols: &KernelSymbols, run_dir: &std::path::Path) -> PathBuf {
    match symbols {
        KernelSymbols::Vmlinux(path) => path.clone(),
        KernelSymbols::Kallsyms => run_dir.join(KALLSYMS_FILE),
    }
}

/// gdb's arguments: the options, the setup script, the user's arguments, then the kernel's
/// symbol file.
pub fn gdb_command_line(plan: &GdbPlan, script: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["-q".into()];
    args.extend(plan.gdb_options.iter().cloned());
    args.extend(["-ex".into(), format!("source {}", script.display())]);
    args.extend(plan.gdb_args.iter().cloned());
    args.push(
        symbol_file(&plan.symbols, &plan.boot.run_dir)
            .display()
            .to_string(),
    );
    args
}

/// Reads the guest's `/proc/kallsyms` and writes the symbol table gdb takes for the kernel
/// ([`KernelSymbols::Kallsyms`]) into the run directory; says how many symbols it holds.
pub fn write_kallsyms_symbols(guest: &mut Guest) -> Result<String, String> {
    let path = guest.run_dir().join(KALLSYMS_FILE);
    let mut text = String::new();
    loop {
        let read = Request::ReadRange {
            path: "/proc/kallsyms".into(),
            offset: text.len() as u64,
            len: kmodlab_proto::READ_RANGE_MAX,
        };
        let piece = match guest.request(&read, Duration::from_secs(60)) {
            crate::guest::Step::Reply(Reply::Files { mut files }) if files.len() == 1 => {
                let file = files.remove(0);
                file.contents.ok_or_else(|| {
                    format!(
                        "cannot read the guest's /proc/kallsyms: {}",
                        file.error.unwrap_or_else(|| "no contents".into())
                    )
                })?
            }
            crate::guest::Step::Reply(other) => {
                return Err(format!("the guest answered a read with {other:?}"))
            }
            crate::guest::Step::Timeout => {
                return Err("the guest did not send /proc/kallsyms within 60 s".into())
            }
            crate::guest::Step::Gone(why) | crate::guest::Step::Broken(why) => return Err(why),
        };
        let done = (piece.len() as u64) < kmodlab_proto::READ_RANGE_MAX;
        text.push_str(&piece);
        if done || piece.is_empty() {
            break;
        }
    }
    let table = kmodlab_symbolize::elf_from_kallsyms(&text)
        .ok_or("the guest's /proc/kallsyms lists no kernel addresses (kptr_restrict?)")?;
    std::fs::write(&path, &table.elf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "kernel symbols: {} names from the guest's /proc/kallsyms (no vmlinux with debug info: \
         no kernel source lines)",
        table.symbols
    ))
}

/// `word` as one word of a POSIX shell command line: as it is when it is safe so, else in
/// single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:+-,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `kmodlab shell --gdb`: what gdb attaching to a shell's guest needs.
#[derive(Clone, Debug)]
pub struct AttachPlan {
    /// The host's gdb.
    pub gdb: PathBuf,
    /// The kernel's symbols.
    pub symbols: KernelSymbols,
    /// The .ko files gdb gives symbols to, by module name.
    pub modules: Vec<(String, PathBuf)>,
}

/// Gets a shell's guest ready for gdb to attach: the kernel's symbol table when it comes from
/// kallsyms, the setup script in attach mode. Returns what to tell the user: the command.
pub fn prepare_attach(guest: &mut Guest, plan: &AttachPlan) -> Result<String, String> {
    let run_dir = guest.run_dir().to_path_buf();
    let mut said = String::new();
    if plan.symbols == KernelSymbols::Kallsyms {
        said = format!("kmodlab: {}\n", write_kallsyms_symbols(guest)?);
    }
    let script = run_dir.join(SETUP_FILE);
    let text = setup_script(&gdb_socket(&run_dir), None, &plan.modules);
    std::fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
    let quote = |p: &std::path::Path| shell_word(&p.display().to_string());
    said.push_str(&format!(
        "kmodlab: gdb attaches to this guest from another terminal with: {} -q -ex {} {}",
        quote(&plan.gdb),
        quote(std::path::Path::new(&format!(
            "source {}",
            script.display()
        ))),
        quote(&symbol_file(&plan.symbols, &run_dir)),
    ));
    Ok(said)
}

/// Boots the guest, loads the module under gdb, and returns when gdb ends (or kmodlab got a
/// signal that ends it); QEMU is gone by then. Returns how gdb ended and the crash reports the
/// console showed.
pub fn run(
    plan: &GdbPlan,
    sink: &mut dyn FnMut(&Event),
) -> Result<(GdbEnd, Vec<CrashReport>), InfraError> {
    let mut guest = Guest::boot(&plan.boot, sink)?;
    guest.connect_host(&plan.link);
    if plan.symbols == KernelSymbols::Kallsyms {
        match write_kallsyms_symbols(&mut guest) {
            Ok(said) => note(&mut guest, said),
            Err(e) => return Err(guest.abort(e)),
        }
    }
    if let Err(e) = guest.pause(SEND_WITHIN) {
        return Err(guest.abort(format!("cannot stop the guest for gdb: {e}")));
    }
    let load = Request::Load {
        path: format!("{}/{}", kmodlab_proto::GUEST_MODULE_DIR, plan.module_file),
        params: kmodlab_proto::param_string(&plan.params),
        observe: Default::default(),
    };
    let load_id = match guest.send(&load, SEND_WITHIN) {
        Ok(id) => id,
        Err(e) => return Err(guest.abort(format!("cannot ask the guest to load: {e}"))),
    };
    let script = plan.boot.run_dir.join(SETUP_FILE);
    let socket = gdb_socket(&plan.boot.run_dir);
    let text = setup_script(&socket, Some(&plan.module_name), &plan.modules);
    if let Err(e) = std::fs::write(&script, text) {
        return Err(guest.abort(format!("{}: {e}", script.display())));
    }
    let args = gdb_command_line(plan, &script);
    let _ = std::fs::write(
        plan.boot.run_dir.join("gdb.cmdline"),
        format!("{} {}\n", plan.gdb.display(), args.join(" ")),
    );
    let mut cmd = Command::new(&plan.gdb);
    cmd.args(&args);
    kmodlab_sys::kill_with_parent(&mut cmd);
    let mut gdb: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot start {}: {e}", plan.gdb.display());
            return Err(guest.abort(why));
        }
    };
    plan.gdb_started
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let end = drive(&mut guest, &mut gdb, plan, load_id);
    let _ = gdb.kill();
    let _ = gdb.wait();
    guest.kill();
    let (reports, _) = guest.finish();
    Ok((end, reports))
}

/// Drains the guest while gdb runs: the load's reply (then the unload), signals; returns when
/// gdb has exited or was ended.
fn drive(guest: &mut Guest, gdb: &mut Child, plan: &GdbPlan, load_id: u64) -> GdbEnd {
    let mut unload_id = None;
    let mut vm_gone = false;
    loop {
        if let Ok(Some(status)) = gdb.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            return GdbEnd::Exited(code);
        }
        let Some(msg) = guest.next_message(Instant::now() + TICK) else {
            if guest.has_exited() {
                if !vm_gone {
                    vm_gone = true;
                    note(guest, "the VM exited: gdb has lost its target".into());
                }
                // Nothing more will come: wait for gdb alone.
                std::thread::sleep(TICK);
            }
            continue;
        };
        match msg {
            VmMessage::Agent(line) => {
                let Ok(envelope) = kmodlab_proto::decode::<Envelope<Reply>>(&line) else {
                    continue;
                };
                let Reply::Call { status, .. } = envelope.body else {
                    continue;
                };
                if envelope.id == load_id {
                    match status {
                        CallStatus::Ok => {
                            note(guest, format!("{} loaded; unloading it", plan.module_name));
                            let req = Request::Unload {
                                name: plan.module_name.clone(),
                                observe: Default::default(),
                            };
                            unload_id = guest.send(&req, SEND_WITHIN).ok();
                        }
                        other => note(guest, format!("the load failed: {}", describe(&other))),
                    }
                } else if Some(envelope.id) == unload_id {
                    match status {
                        CallStatus::Ok => note(guest, format!("{} unloaded", plan.module_name)),
                        other => note(guest, format!("the unload failed: {}", describe(&other))),
                    }
                }
            }
            VmMessage::Host(HostEvent::Signal(sig)) => {
                let _ = gdb.kill();
                let _ = gdb.wait();
                return GdbEnd::Signal(sig);
            }
            VmMessage::Exited(_) if !vm_gone => {
                vm_gone = true;
                note(guest, "the VM exited: gdb has lost its target".into());
            }
            _ => {}
        }
    }
}

fn note(guest: &mut Guest, text: String) {
    guest.emit(&Event::Note(text));
}

fn describe(status: &CallStatus) -> String {
    match *status {
        CallStatus::Ok => "ok".into(),
        CallStatus::Failed { errno } => kmodlab_sys::insmod_strerror(errno),
        CallStatus::Killed { signal } => {
            format!(
                "the loader was killed ({})",
                kmodlab_sys::signal_name(signal)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::BootKernel;
    use crate::qemu::Accel;
    use std::path::Path;

    fn plan() -> GdbPlan {
        GdbPlan {
            boot: BootSpec {
                qemu: "qemu".into(),
                kernel: BootKernel {
                    release: "7.3.4".into(),
                    image: "bzImage".into(),
                    modules_dir: None,
                },
                accel: Accel::Tcg,
                agent_binary: "kmodlab".into(),
                userland: None,
                memory_mb: 512,
                run_dir: "/runs/1".into(),
                boot_deadline: Duration::from_secs(60),
                modules: Vec::new(),
                files: Vec::new(),
                kernel_args: vec![NOKASLR.into()],
                warm_dir: None,
                gdb_stub: true,
            },
            gdb: "gdb".into(),
            symbols: KernelSymbols::Vmlinux("/k/vmlinux".into()),
            module_name: "oops_mod".into(),
            module_file: "oops_mod.ko".into(),
            modules: vec![
                ("oops_mod".into(), "/m/oops \"mod\".ko".into()),
                ("dep".into(), "/m/dep.ko".into()),
            ],
            params: Vec::new(),
            gdb_options: vec!["-iex".into(), "add-auto-load-safe-path /k".into()],
            gdb_args: vec!["--batch".into(), "-ex".into(), "bt".into()],
            link: HostLink::new(),
            gdb_started: Default::default(),
        }
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("/usr/bin/gdb"), "/usr/bin/gdb");
        assert_eq!(
            shell_word("source /r/gdb-setup.py"),
            "'source /r/gdb-setup.py'"
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_setup_script_starts_with_its_settings() {
        let p = plan();
        let socket = gdb_socket(&p.boot.run_dir);
        let s = setup_script(&socket, Some("oops_mod"), &p.modules);
        assert!(
            s.starts_with(
                "KMODLAB_SOCKET = \"/runs/1/gdb.sock\"\nKMODLAB_MODULE = \"oops_mod\"\n\
                 KMODLAB_MODULES = {\"dep\":\"/m/dep.ko\",\"oops_mod\":\"/m/oops \\\"mod\\\".ko\"}\n\n"
            ),
            "{s}"
        );
        assert!(s.trim_end().ends_with("kmodlab_start()"));
        let attach = setup_script(&socket, None, &[]);
        assert!(
            attach.contains("\nKMODLAB_MODULE = None\nKMODLAB_MODULES = {}\n"),
            "{attach}"
        );
    }

    #[test]
    fn the_setup_comes_before_the_users_arguments_and_vmlinux_last() {
        let p = plan();
        let args = gdb_command_line(&p, Path::new("/runs/1/gdb-setup.py"));
        assert_eq!(
            args,
            [
                "-q",
                "-iex",
                "add-auto-load-safe-path /k",
                "-ex",
                "source /runs/1/gdb-setup.py",
                "--batch",
                "-ex",
                "bt",
                "/k/vmlinux"
            ]
        );
        let from_kallsyms = GdbPlan {
            symbols: KernelSymbols::Kallsyms,
            ..p
        };
        let args = gdb_command_line(&from_kallsyms, Path::new("/runs/1/gdb-setup.py"));
        assert_eq!(args.last().unwrap(), "/runs/1/kallsyms.elf");
    }
}
