//! The guest agent: PID 1 of the generated initramfs.
//!
//! A straight line: install a panic hook, mount the pseudo filesystems, load the agent's own
//! transport modules, find the virtio-serial port, say ready, then answer requests one at a time
//! until told to power off. Module loads and unloads run in a forked child, so an oops in the
//! module's code kills that child and never init. Whatever happens, the agent reports before it
//! powers off.
#![deny(missing_docs)]

mod shell;

use kmodlab_proto::{CallStatus, GuestFile, GuestTask, GuestTasks, Observe, Reply, Request};
use kmodlab_sys::ChildExit;
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The port, shared with the panic hook so that a bug in the agent is still reported.
static PORT: Mutex<Option<File>> = Mutex::new(None);
/// The number of the request being answered (0 before the first), for the panic hook's reply.
static REQUEST: AtomicU64 = AtomicU64::new(0);
/// The most a command's standard output or error sends back; the rest is cut, saying so.
const OUTPUT_LIMIT: usize = 4 << 20;

/// How long the agent waits for its virtio-serial port to appear.
const PORT_DEADLINE: Duration = Duration::from_secs(20);
/// The largest file contents returned by a read request.
const READ_LIMIT: u64 = 64 * 1024;

/// Whether this process is the guest agent: PID 1 started by a kernel whose command line
/// kmodlab wrote (it carries [`kmodlab_proto::AGENT_CMDLINE`]).
pub fn is_agent() -> bool {
    std::process::id() == 1 && std::env::var_os(kmodlab_proto::AGENT_ENV).is_some_and(|v| v == "1")
}

/// Runs the agent. Never returns: it ends by powering the machine off.
pub fn run() -> ! {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        kmsg_write(&format!("kmodlab-agent: fatal: {message}"));
        send_numbered(
            REQUEST.load(Ordering::Relaxed),
            &Reply::Fatal { message },
            true,
        );
        power_off();
    }));
    let outcome = serve();
    if let Err(e) = outcome {
        let message = e.to_string();
        kmsg_write(&format!("kmodlab-agent: {message}"));
        send(&Reply::Fatal { message });
    }
    power_off()
}

fn power_off() -> ! {
    let e = kmodlab_sys::reboot(kmodlab_sys::Reboot::Restart);
    kmsg_write(&format!("kmodlab-agent: reboot failed: {e}"));
    // Nothing else to do: an exiting init panics the kernel, which also ends QEMU.
    std::process::exit(1)
}

fn kmsg_write(line: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Answers the request being handled.
fn send(reply: &Reply) {
    send_numbered(REQUEST.load(Ordering::Relaxed), reply, false);
}

/// Sends a message no request asked for (a shell session's output and end), numbered 0.
fn send_unasked(reply: &Reply) {
    send_numbered(0, reply, false);
}

/// Sends one message. Session threads and the request loop share the port, one whole line at a
/// time; the panic hook only tries, since the panicking thread may hold the port.
fn send_numbered(id: u64, reply: &Reply, from_panic: bool) {
    let line = kmodlab_proto::encode(&kmodlab_proto::Envelope { id, body: reply });
    let guard = if from_panic {
        PORT.try_lock().ok()
    } else {
        Some(PORT.lock().unwrap_or_else(|p| p.into_inner()))
    };
    if let Some(mut guard) = guard {
        if let Some(port) = guard.as_mut() {
            let _ = port.write_all(line.as_bytes());
            let _ = port.flush();
        }
    }
}

/// What busybox's `halt`, `poweroff` and `reboot` send to init (SIGUSR1, SIGUSR2, SIGTERM):
/// each ends the machine. Caught by a handler and waited for by a thread (programs the agent
/// starts get the default dispositions back).
fn power_off_on_signals() {
    let Ok(signals) =
        kmodlab_sys::tty::Signals::catch(&[libc::SIGUSR1, libc::SIGUSR2, libc::SIGTERM])
    else {
        return;
    };
    std::thread::spawn(move || {
        let sig = signals.wait();
        kmsg_write(&format!(
            "kmodlab-agent: {} from user space: powering off",
            kmodlab_sys::signal_name(sig)
        ));
        power_off();
    });
}

fn serve() -> io::Result<()> {
    power_off_on_signals();
    for (fstype, dir) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        let _ = std::fs::create_dir_all(dir);
        if let Err(e) = kmodlab_sys::mount(fstype, Path::new(dir)) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(io::Error::new(e.kind(), format!("mount {dir}: {e}")));
            }
        }
    }
    // The host boots with a quiet console for speed; from now on every message must reach it.
    let _ = std::fs::write("/sys/module/printk/parameters/ignore_loglevel", "Y");
    load_boot_modules()?;
    let dev = find_port(kmodlab_proto::PORT_NAME, PORT_DEADLINE)?;
    let port = OpenOptions::new().read(true).write(true).open(&dev)?;
    let reader = BufReader::new(port.try_clone()?);
    *PORT.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);

    settle_clocksource(CLOCKSOURCE_DEADLINE);
    let mut kmsg = Kmsg::open()?;
    kmsg.drain();
    send(&Reply::Ready {
        kernel: kernel_release(),
        uptime_s: uptime(),
    });

    let mut sessions = shell::Sessions::default();
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request =
            match kmodlab_proto::decode::<kmodlab_proto::Envelope<Request>>(&line) {
                Ok(r) => {
                    REQUEST.store(r.id, Ordering::Relaxed);
                    r.body
                }
                Err(e) => {
                    REQUEST.store(0, Ordering::Relaxed);
                    send(&Reply::Error {
                        message: format!("bad request: {e}"),
                    });
                    continue;
                }
            };
        let reply = match request {
            Request::Load {
                path,
                params,
                observe,
            } => {
                kmsg.drain();
                let (status, tasks, maps) =
                    call("insmod", observe, |witness| load(&path, &params, witness));
                Reply::Call {
                    status,
                    log: kmsg.drain(),
                    tasks,
                    maps,
                }
            }
            Request::Unload { name, observe } => {
                kmsg.drain();
                let (status, tasks, maps) = call("rmmod", observe, |witness| {
                    kmodlab_sys::delete_module_with(&name, false, || witness.just_before())
                });
                Reply::Call {
                    status,
                    log: kmsg.drain(),
                    tasks,
                    maps,
                }
            }
            Request::Read { paths } => Reply::Files {
                files: paths.iter().map(|p| read(p)).collect(),
            },
            Request::ReadRange { path, offset, len } => Reply::Files {
                files: vec![read_range(&path, offset, len)],
            },
            Request::Exec { argv, stop_on } => {
                kmsg.drain();
                let mut reply = exec(&argv, stop_on.as_deref());
                if let Reply::Exited { log, .. } = &mut reply {
                    *log = kmsg.drain();
                }
                reply
            }
            Request::Put { path, data } => Reply::Call {
                status: put(&path, &data),
                log: Vec::new(),
                tasks: None,
                maps: None,
            },
            Request::Shell {
                session,
                command,
                tty,
                cwd,
                term,
            } => {
                match sessions.start(session, command.as_deref(), tty, &cwd, &term, send_unasked) {
                    Ok(()) => Reply::Call {
                        status: CallStatus::Ok,
                        log: Vec::new(),
                        tasks: None,
                        maps: None,
                    },
                    Err(e) => Reply::Error {
                        message: format!("cannot start a shell: {e}"),
                    },
                }
            }
            Request::Input { session, data, eof } => {
                if let Some(bytes) = kmodlab_proto::base64_decode(&data) {
                    sessions.input(session, bytes, eof);
                }
                continue;
            }
            Request::Resize { session, size } => {
                sessions.resize(session, size);
                continue;
            }
            Request::Hangup { session } => {
                sessions.hangup(session);
                continue;
            }
            Request::LeakScan => {
                kmsg.drain();
                let (kmemleak, error) = match leak_scan() {
                    Ok(found) => (found, None),
                    Err(e) => (None, Some(e)),
                };
                Reply::Leaks {
                    kmemleak,
                    error,
                    log: kmsg.drain(),
                }
            }
            Request::ZeroFreeMemory => Reply::Call {
                status: call("zero-free", Observe::default(), |_| zero_free_memory()).0,
                log: kmsg.drain(),
                tasks: None,
                maps: None,
            },
            Request::PowerOff => return Ok(()),
        };
        send(&reply);
    }
    Ok(())
}

/// How long the agent waits for the kernel to settle on its clocksource.
const CLOCKSOURCE_DEADLINE: Duration = Duration::from_secs(5);

/// Waits, at most `limit`, until the kernel has left its early TSC clocksource. The TSC's
/// refined calibration runs about a second after the clocksource starts and prints three lines
/// ("Refined TSC clocksource calibration", "Switched to clocksource tsc"); on a fast boot (the
/// Rust lab kernel) or a busy host, that is after the agent is ready, and the lines would land
/// in the first module's load log. sysfs has no notification for this: it is polled.
fn settle_clocksource(limit: Duration) {
    let path = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    let start = Instant::now();
    while start.elapsed() < limit {
        match std::fs::read_to_string(path) {
            Ok(s) if s.trim() == "tsc-early" => std::thread::sleep(Duration::from_millis(10)),
            _ => return,
        }
    }
}

/// Loads the agent's own transport (virtio_console and what it needs), in the order listed.
fn load_boot_modules() -> io::Result<()> {
    let dir = Path::new(kmodlab_proto::GUEST_BOOT_MODULE_DIR);
    let Ok(order) = std::fs::read_to_string(dir.join("order")) else {
        return Ok(());
    };
    for name in order.lines().filter(|l| !l.is_empty()) {
        let path = dir.join(name);
        let file = File::open(&path)?;
        match kmodlab_sys::finit_module(&file, "", 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("load {}: {e}", path.display()),
                ))
            }
        }
    }
    Ok(())
}

fn find_port(name: &str, deadline: Duration) -> io::Result<PathBuf> {
    let start = Instant::now();
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let found = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if found.trim() == name {
                    let dev = Path::new("/dev").join(entry.file_name());
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if start.elapsed() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no virtio-serial port named {name} after {deadline:?}"),
            ));
        }
        // sysfs has no change notification for this; poll briefly.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Loads a module file with the module tools' own code (insmod's: finit_module, or
/// decompression and init_module when the kernel cannot decompress the file itself), with
/// `witness` reporting right before the syscall.
fn load(path: &str, params: &str, witness: Witness) -> io::Result<()> {
    let kernel = kmodlab_kmod::kernel_state::Kernel {
        syscalls: Box::new(witness),
        ..kmodlab_kmod::kernel_state::Kernel::host()
    };
    let mut info = Vec::new();
    kmodlab_kmod::module_insert::insert_module_file(
        &kernel,
        Path::new(path),
        kmodlab_kmod::module_insert::ForceFlags::default(),
        params,
        &mut info,
    )
    .map_err(io::Error::from_raw_os_error)
}

/// The most of `/proc/self/maps` a call reports (a few thousand areas).
const MAPS_LIMIT: usize = 256 * 1024;

/// What the calling process reports to the agent right before its syscall, through a pipe: the
/// guest's processes (one JSON line, when asked for), then its own `/proc/self/maps` (when asked
/// for, to the end of what the pipe carries).
struct Witness {
    observe: Observe,
    pipe: RefCell<File>,
    /// Allocated before anything is read: from the read of the maps to the syscall, nothing is
    /// allocated or freed, so the areas read are the ones the module walks.
    maps: RefCell<Vec<u8>>,
}

impl Witness {
    fn new(observe: Observe, pipe: File) -> Witness {
        let maps = if observe.maps {
            vec![0; MAPS_LIMIT]
        } else {
            Vec::new()
        };
        Witness {
            observe,
            pipe: RefCell::new(pipe),
            maps: RefCell::new(maps),
        }
    }

    /// Reports, once the syscall's arguments are ready. Errors only leave the report short:
    /// the host then says what is missing.
    fn just_before(&self) {
        let mut pipe = self.pipe.borrow_mut();
        if self.observe.tasks {
            let snapshot = GuestTasks {
                caller: std::process::id(),
                before: guest_tasks(),
                after: Vec::new(),
            };
            let mut line = kmodlab_proto::encode(&snapshot);
            if !line.ends_with('\n') {
                line.push('\n');
            }
            let _ = pipe.write_all(line.as_bytes());
        }
        if self.observe.maps {
            // No allocation from here to the syscall: the buffer exists already, and read(2),
            // write(2) and the buffers' borrows allocate nothing.
            let mut maps = self.maps.borrow_mut();
            if let Ok(n) = kmodlab_sys::read_into(c"/proc/self/maps", &mut maps) {
                let _ = pipe.write_all(&maps[..n]);
            }
        }
    }
}

impl kmodlab_kmod::kernel_state::ModuleSyscalls for Witness {
    fn finit_module(&self, file: &File, params: &str, flags: u32) -> io::Result<()> {
        kmodlab_sys::finit_module_with(file, params, flags, || self.just_before())
    }
    fn init_module(&self, image: &[u8], params: &str) -> io::Result<()> {
        kmodlab_sys::init_module_with(image, params, || self.just_before())
    }
    fn delete_module(&self, name: &str, force: bool) -> io::Result<()> {
        kmodlab_sys::delete_module_with(name, force, || self.just_before())
    }
}

/// Runs a load or unload in a child named `comm` (so that crash reports say `Comm: insmod`);
/// with what `observe` asks for, the guest's processes around the call and the child's memory
/// areas right before its syscall.
fn call(
    comm: &str,
    observe: Observe,
    f: impl FnOnce(Witness) -> io::Result<()>,
) -> (CallStatus, Option<GuestTasks>, Option<String>) {
    let exit = kmodlab_sys::fork_call_piped(|pipe| {
        kmodlab_sys::set_comm(comm);
        match f(Witness::new(observe, pipe)) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    });
    let (status, report) = match exit {
        Ok((ChildExit::Exited(0), report)) => (CallStatus::Ok, report),
        Ok((ChildExit::Exited(errno), report)) => (CallStatus::Failed { errno }, report),
        Ok((ChildExit::Signaled(signal), report)) => (CallStatus::Killed { signal }, report),
        Err(e) => (
            CallStatus::Failed {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            },
            Vec::new(),
        ),
    };
    let (tasks, maps) = witness_report(observe, &report);
    // The processes after the call: the caller has been reaped by now.
    let tasks = tasks.map(|before| GuestTasks {
        after: guest_tasks(),
        ..before
    });
    (status, tasks, maps)
}

/// What a [`Witness`] wrote: the process list and the maps text, each when asked for and
/// written (a call that never reached its syscall wrote nothing).
fn witness_report(observe: Observe, report: &[u8]) -> (Option<GuestTasks>, Option<String>) {
    if report.is_empty() {
        return (None, None);
    }
    let mut rest = report;
    let mut tasks = None;
    if observe.tasks {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        tasks = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|line| kmodlab_proto::decode::<GuestTasks>(line).ok());
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let maps = observe
        .maps
        .then(|| String::from_utf8_lossy(rest).into_owned());
    (tasks, maps)
}

/// Every process of the guest (each thread group once, as `/proc` lists them), read from
/// `/proc/PID/stat`; one that ends while it is read is left out.
fn guest_tasks() -> Vec<GuestTask> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut tasks: Vec<GuestTask> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect();
    tasks.sort_by_key(|t| t.pid);
    tasks
}

/// `PF_KTHREAD`, in the flags of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// A process from its `/proc/PID/stat` line: `PID (COMM) STATE PPID ...`, the name between the
/// first `(` and the last `)` (a name may hold both), the flags the 9th field, the start time
/// the 22nd.
fn parse_stat(stat: &[u8]) -> Option<GuestTask> {
    let text = String::from_utf8_lossy(stat);
    let (pid, rest) = text.split_once(" (")?;
    let close = rest.rfind(')')?;
    let comm = &rest[..close];
    let fields: Vec<&str> = rest[close + 1..].split_whitespace().collect();
    // Fields after the name, from the 3rd (the state): the 4th is at index 1.
    let field = |n: usize| fields.get(n - 3).copied();
    let flags: u64 = field(9)?.parse().ok()?;
    Some(GuestTask {
        pid: pid.trim().parse().ok()?,
        ppid: field(4)?.parse().ok()?,
        comm: comm.to_string(),
        kthread: flags & PF_KTHREAD != 0,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Runs `argv`: an absolute path as it is, any other name as this very binary under that name
/// (the multi-call binary is then that tool).
fn exec(argv: &[String], stop_on: Option<&str>) -> Reply {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let Some(name) = argv.first() else {
        return Reply::Error {
            message: "exec: empty command".into(),
        };
    };
    let mut cmd = if name.starts_with('/') {
        std::process::Command::new(name)
    } else {
        let mut c = std::process::Command::new("/proc/self/exe");
        c.arg0(name);
        c
    };
    cmd.args(&argv[1..]).stdin(std::process::Stdio::null());
    // The kernel starts init without PATH; a shell run this way finds the module tools and the
    // busybox commands as an interactive one does.
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", shell::PATH);
    }
    match run_until(cmd, stop_on) {
        Ok(out) => Reply::Exited {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: bounded_text(&out.stdout),
            stderr: bounded_text(&out.stderr),
            log: Vec::new(),
        },
        Err(e) => Reply::Error {
            message: format!("exec {name}: {e}"),
        },
    }
}

/// A command's output as text, cut at [`OUTPUT_LIMIT`] bytes with a line saying so.
fn bounded_text(bytes: &[u8]) -> String {
    if bytes.len() <= OUTPUT_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut text = String::from_utf8_lossy(&bytes[..OUTPUT_LIMIT]).into_owned();
    text.push_str(&format!(
        "\n[kmodlab: output cut at {OUTPUT_LIMIT} of {} bytes]\n",
        bytes.len()
    ));
    text
}

/// Runs `cmd` to its end and collects its output; with `stop_on`, sends it SIGTERM as soon as its
/// standard output contains that text (then reads on until it exits).
fn run_until(
    mut cmd: std::process::Command,
    stop_on: Option<&str>,
) -> io::Result<std::process::Output> {
    let Some(needle) = stop_on else {
        return cmd.output();
    };
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut err_pipe = child.stderr.take();
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err_pipe.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let mut stdout = Vec::new();
    let mut stopped = false;
    if let Some(mut out) = child.stdout.take() {
        let mut chunk = [0u8; 4096];
        loop {
            match out.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    stdout.extend_from_slice(&chunk[..n]);
                    // Search only where the text can newly appear.
                    let from = stdout.len().saturating_sub(n + needle.len());
                    if !stopped
                        && stdout[from..]
                            .windows(needle.len().max(1))
                            .any(|w| w == needle.as_bytes())
                    {
                        stopped = true;
                        kmodlab_sys::terminate(child.id());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
    let status = child.wait()?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Writes a file sent by the host (a restored guest gets the module under test this way).
fn put(path: &str, data: &str) -> CallStatus {
    let Some(bytes) = kmodlab_proto::base64_decode(data) else {
        return CallStatus::Failed {
            errno: libc::EINVAL,
        };
    };
    let path = Path::new(path);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, bytes));
    match written {
        Ok(()) => CallStatus::Ok,
        Err(e) => CallStatus::Failed {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        },
    }
}

/// kmemleak's control and report file.
const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// Memory [`zero_free_memory`] leaves free beyond twice the kernel's minimum free reserve
/// (`vm.min_free_kbytes`: allocations below its watermarks would wake reclaim, or the OOM killer).
const ZERO_FREE_MARGIN_KB: u64 = 2 * 1024;

/// The minimum free reserve while [`zero_free_memory`] runs.
const ZERO_FREE_RESERVE_KB: u64 = 256;

const MIN_FREE_KBYTES: &str = "/proc/sys/vm/min_free_kbytes";
const LOWMEM_RESERVE_RATIO: &str = "/proc/sys/vm/lowmem_reserve_ratio";

/// Maps nearly all free memory as private anonymous pages, populated for writing (the kernel
/// hands out each one zeroed), and unmaps it: the freed pages stay zero, whatever they held
/// before (the initramfs image the kernel unpacked, boot-time buffers).
///
/// The pages it cannot take keep what they held, and a saved state holds them. Two of the
/// kernel's reserves keep pages out of its reach: the minimum free reserve (`vm.min_free_kbytes`,
/// 2.6 MB in a 512 MB guest), and the DMA zone's protection from ordinary allocations
/// (`vm.lowmem_reserve_ratio`), which keeps its 13 MB, where the boot loader put the compressed
/// kernel image, for when the zone above is exhausted. Both are lowered meanwhile, and put back.
/// With [`zero_free_pages`], states of one configuration come out within 1 MB of each other
/// (22-30 MB for Debian's kernel before).
fn zero_free_memory() -> io::Result<()> {
    let reserve_kb: Option<u64> = std::fs::read_to_string(MIN_FREE_KBYTES)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let lowered = reserve_kb.is_some_and(|r| {
        r > ZERO_FREE_RESERVE_KB
            && std::fs::write(MIN_FREE_KBYTES, ZERO_FREE_RESERVE_KB.to_string()).is_ok()
    });
    let ratios = std::fs::read_to_string(LOWMEM_RESERVE_RATIO).ok();
    let unprotected = ratios.as_deref().is_some_and(|r| {
        let zeros = vec!["0"; r.split_whitespace().count()].join(" ");
        std::fs::write(LOWMEM_RESERVE_RATIO, zeros).is_ok()
    });
    let reserve_now = if lowered {
        ZERO_FREE_RESERVE_KB
    } else {
        reserve_kb.unwrap_or(16 * 1024)
    };
    let zeroed = zero_free_pages(2 * reserve_now + ZERO_FREE_MARGIN_KB);
    // Both put back, whatever failed before.
    let ratios_back = match (unprotected, &ratios) {
        (true, Some(r)) => std::fs::write(LOWMEM_RESERVE_RATIO, r.trim()),
        _ => Ok(()),
    };
    let reserve_back = match (lowered, reserve_kb) {
        (true, Some(r)) => std::fs::write(MIN_FREE_KBYTES, r.to_string()),
        _ => Ok(()),
    };
    zeroed.and(ratios_back).and(reserve_back)
}

/// The most [`zero_free_pages`] maps at a time.
const ZERO_CHUNK_KB: u64 = 64 * 1024;

/// [`zero_free_memory`]'s mappings: all free memory but `keep_kb`, mapped a chunk at a time
/// and held until the end. Free memory is read again before each chunk: as memory runs short,
/// the kernel frees caches (some 30 MB of a freshly booted guest), pages that hold what they
/// held and that one mapping sized at the start would leave out. Stops when a chunk brings no
/// memory (the kernel keeps the rest back).
fn zero_free_pages(keep_kb: u64) -> io::Result<()> {
    let mut maps: Vec<(*mut libc::c_void, usize)> = Vec::new();
    let outcome = (|| -> io::Result<()> {
        let mut free_kb = mem_free_kb()?;
        while free_kb > keep_kb && maps.len() < 64 {
            let kb = (free_kb - keep_kb).min(ZERO_CHUNK_KB);
            let bytes = usize::try_from(kb * 1024).map_err(io::Error::other)?;
            // SAFETY: a fresh anonymous mapping, never read through, unmapped below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE
                        | libc::MAP_ANONYMOUS
                        | libc::MAP_POPULATE
                        | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            maps.push((p, bytes));
            let now = mem_free_kb()?;
            if now + kb / 2 > free_kb {
                break;
            }
            free_kb = now;
        }
        Ok(())
    })();
    for (p, bytes) in maps {
        // SAFETY: mapped above with this length, not used since.
        unsafe {
            libc::munmap(p, bytes);
        }
    }
    outcome
}

/// `MemFree` of `/proc/meminfo`, in KiB.
fn mem_free_kb() -> io::Result<u64> {
    std::fs::read_to_string("/proc/meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemFree:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no MemFree in /proc/meminfo"))
}

/// One kmemleak scan, and its report; `None` when the kernel has no kmemleak. Stacks of live
/// tasks are not scanned: a frame left below the agent's stack pointer by the load would keep
/// the module's leak referenced, and after the unload no task runs the module's code.
fn leak_scan() -> Result<Option<String>, String> {
    let path = Path::new(KMEMLEAK);
    if !path.exists() {
        let _ = kmodlab_sys::mount("debugfs", Path::new("/sys/kernel/debug"));
        if !path.exists() {
            return Ok(None);
        }
    }
    for command in ["stack=off", "scan"] {
        std::fs::write(path, command).map_err(|e| format!("echo {command} > {KMEMLEAK}: {e}"))?;
    }
    let mut text = Vec::new();
    File::open(path)
        .and_then(|f| f.take(LEAK_REPORT_LIMIT).read_to_end(&mut text))
        .map_err(|e| format!("{KMEMLEAK}: {e}"))?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The most of kmemleak's report the agent sends (a kernel that leaks at every turn).
const LEAK_REPORT_LIMIT: u64 = 4 << 20;

/// Part of a file ([`Request::ReadRange`]): bytes that are not UTF-8 are replaced.
fn read_range(path: &str, offset: u64, len: u64) -> GuestFile {
    use std::io::{Seek, SeekFrom};
    let mut buf = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        f.take(len.min(kmodlab_proto::READ_RANGE_MAX))
            .read_to_end(&mut buf)
    });
    let (contents, error) = match read {
        Ok(_) => (Some(String::from_utf8_lossy(&buf).into_owned()), None),
        Err(e) => (
            None,
            Some(kmodlab_sys::strerror(e.raw_os_error().unwrap_or(0))),
        ),
    };
    GuestFile {
        path: path.to_string(),
        exists: contents.is_some() || std::fs::metadata(path).is_ok(),
        dir: false,
        contents,
        error,
    }
}

fn read(path: &str) -> GuestFile {
    let meta = std::fs::metadata(path);
    let exists = meta.is_ok();
    let dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let (contents, error) = match meta {
        // A directory reads as its entry names, one per line, sorted.
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                (Some(names.iter().map(|n| format!("{n}\n")).collect()), None)
            }
            Err(e) => (
                None,
                Some(kmodlab_sys::strerror(e.raw_os_error().unwrap_or(0))),
            ),
        },
        Ok(_) => {
            let mut buf = Vec::new();
            match File::open(path).and_then(|f| f.take(READ_LIMIT).read_to_end(&mut buf)) {
                Ok(_) => (Some(String::from_utf8_lossy(&buf).into_owned()), None),
                Err(e) => (
                    None,
                    Some(kmodlab_sys::strerror(e.raw_os_error().unwrap_or(0))),
                ),
            }
        }
        Err(e) => (
            None,
            Some(kmodlab_sys::strerror(e.raw_os_error().unwrap_or(0))),
        ),
    };
    GuestFile {
        path: path.to_string(),
        exists,
        dir,
        contents,
        error,
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Whether a record is new, given the sequence number of the last record taken.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Taken before (a reader may see a record again after the log was cleared).
    Old,
    /// New; `lost` records between it and the last one were overwritten unread.
    New { lost: u64 },
}

fn by_sequence(last: &mut Option<u64>, seq: Option<u64>) -> Seen {
    let Some(seq) = seq else {
        return Seen::New { lost: 0 };
    };
    let seen = match *last {
        Some(l) if seq <= l => return Seen::Old,
        Some(l) => Seen::New { lost: seq - l - 1 },
        None => Seen::New { lost: 0 },
    };
    *last = Some(seq);
    seen
}

/// The kernel log, read record by record. What a call printed is told apart from what was there
/// before by sequence number: every record after the last one seen before the call.
struct Kmsg {
    dev: kmodlab_sys::KmsgDevice,
    last_seq: Option<u64>,
}

impl Kmsg {
    fn open() -> io::Result<Kmsg> {
        let dev = kmodlab_sys::KmsgDevice::open(false, kmodlab_sys::KmsgStart::AfterClear)?;
        Ok(Kmsg {
            dev,
            last_seq: None,
        })
    }

    /// Reads every record written since the last call and returns their messages, with a note
    /// when the kernel overwrote records before they could be read.
    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; kmodlab_sys::KMSG_RECORD_MAX];
        while let Ok(Some(n)) = self.dev.read_record(&mut buf) {
            let Some(rec) = kmodlab_kmsg::parse_record(&buf[..n]) else {
                continue;
            };
            match by_sequence(&mut self.last_seq, rec.seq) {
                Seen::Old => continue,
                Seen::New { lost: 0 } => {}
                Seen::New { lost } => out.push(format!(
                    "kmodlab: {lost} kernel messages were overwritten before they could be read"
                )),
            }
            out.push(rec.text());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_pid_parent_name_kind_and_start() {
        let line = b"10 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 3 0 0 20 0 1 0 78 0 0 18446744073709551615 0 0";
        assert_eq!(
            parse_stat(line),
            Some(GuestTask {
                pid: 10,
                ppid: 2,
                comm: "kworker/0:1-events".into(),
                kthread: true,
                start_time: 78,
            })
        );
        // A name with a space and a parenthesis; a user process.
        let line =
            b"130 (a b) c)) S 1 130 130 0 -1 4194304 93 179 0 0 2 2 0 2 20 0 1 0 275 2314240";
        let t = parse_stat(line).unwrap();
        assert_eq!((t.pid, t.ppid, t.comm.as_str()), (130, 1, "a b) c)"));
        assert!(!t.kthread);
        assert_eq!(t.start_time, 275);
        assert_eq!(parse_stat(b"7 (short) S 1"), None);
    }

    #[test]
    fn a_witness_report_is_a_task_line_then_the_maps() {
        let both = Observe {
            tasks: true,
            maps: true,
        };
        let report = b"{\"caller\":5,\"before\":[],\"after\":[]}\n1000-2000 r--p 0 00:00 0\n";
        let (tasks, maps) = witness_report(both, report);
        assert_eq!(tasks.map(|t| t.caller), Some(5));
        assert_eq!(maps.as_deref(), Some("1000-2000 r--p 0 00:00 0\n"));
        let maps_only = Observe {
            tasks: false,
            maps: true,
        };
        let (tasks, maps) = witness_report(maps_only, b"1000-2000 r--p\n");
        assert!(tasks.is_none());
        assert_eq!(maps.as_deref(), Some("1000-2000 r--p\n"));
        // Nothing written: the call did not reach its syscall.
        assert_eq!(witness_report(both, b"").1, None);
    }

    #[test]
    fn records_are_told_apart_by_sequence_number() {
        let mut last = None;
        assert_eq!(by_sequence(&mut last, Some(7)), Seen::New { lost: 0 });
        assert_eq!(by_sequence(&mut last, Some(8)), Seen::New { lost: 0 });
        assert_eq!(by_sequence(&mut last, Some(8)), Seen::Old);
        assert_eq!(by_sequence(&mut last, Some(3)), Seen::Old);
        assert_eq!(by_sequence(&mut last, Some(12)), Seen::New { lost: 3 });
        assert_eq!(last, Some(12));
        // A record without a sequence number is always taken.
        assert_eq!(by_sequence(&mut last, None), Seen::New { lost: 0 });
    }
}
