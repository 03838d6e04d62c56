//! `kmodlab shell`: module directories built on the host and put under `/lab` in a guest with a
//! real shell; the host terminal in raw mode relaying to it; sources watched and rebuilt on
//! save; crash reports summarized with their source line; a second terminal attaching over a
//! socket in the session's run directory.

use crate::{Lab, LabError};
use kmodlab_crash::CrashReport;
use kmodlab_events::Event;
use kmodlab_proto::AttachMessage;
use kmodlab_proto::TermSize;
use kmodlab_sys::tty;
use kmodlab_vm::shell::{Attached, HostEvent, HostLink, ShellEnd, ShellHost, LOCAL};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where module directories appear in the guest.
pub const GUEST_LAB_DIR: &str = "/lab";
/// The most `transcript.log` keeps of a session.
const TRANSCRIPT_LIMIT: u64 = 16 << 20;

/// Whether a changed file is one of a module's sources (not a build product): what `watch` and
/// the shell rebuild on, and what the shell copies into the guest beside the `.ko`.
pub fn is_source(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    if name.starts_with('.') || name.ends_with(".mod.c") {
        return false;
    }
    [".c", ".h", ".rs", ".S"].iter().any(|e| name.ends_with(e))
        || ["Kbuild", "Makefile", "kmodlab.toml"].contains(&name)
}

/// What the user put on the command line: a module directory (built, watched) or a `.ko`.
#[derive(Clone, Debug)]
pub enum Item {
    /// A module directory.
    Dir(PathBuf),
    /// A module file.
    Ko(PathBuf),
}

impl Item {
    /// Its place in the guest: `/lab/NAME` for a directory, `/lab/FILE.ko` for a file.
    pub fn guest_path(&self) -> String {
        let (Item::Dir(p) | Item::Ko(p)) = self;
        let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let name = canon
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "module".into());
        format!("{GUEST_LAB_DIR}/{name}")
    }
}

/// What a shell session is asked to do.
pub struct ShellOptions {
    /// Module directories and files.
    pub items: Vec<Item>,
    /// Commands to run instead of an interactive shell.
    pub command: Option<String>,
    /// Boot with QEMU's gdb stub and say how gdb attaches (`--gdb`).
    pub gdb: bool,
}

/// The .ko files of the items by module name, for gdb: a directory's built modules, and files
/// that are no compressed modules (gdb reads ELF files only).
fn module_files(items: &[Item]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for item in items {
        let files: Vec<PathBuf> = match item {
            Item::Ko(p) => vec![p.clone()],
            Item::Dir(dir) => std::fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        for f in files {
            let Some(stem) = f
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            else {
                continue;
            };
            let ko = std::fs::canonicalize(&f).unwrap_or(f.clone());
            out.push((stem.replace('-', "_"), ko));
        }
    }
    out.sort();
    out
}

/// The host side of a session: the modules, the terminal, the transcript.
struct Host<'a> {
    lab: &'a Lab,
    items: Vec<Item>,
    /// Raw mode on the local terminal: output is passed as is, kmodlab's lines end in CR LF.
    tty: bool,
    /// The last byte the terminal got was a newline.
    at_line_start: bool,
    transcript: Option<std::fs::File>,
    written: u64,
}

impl Host<'_> {
    fn out(&mut self, stream: u8, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(t) = self.transcript.as_mut() {
            if self.written < TRANSCRIPT_LIMIT {
                let n = bytes.len().min((TRANSCRIPT_LIMIT - self.written) as usize);
                let _ = t.write_all(&bytes[..n]);
                self.written += n as u64;
            }
        }
        self.at_line_start = bytes.ends_with(b"\n");
        let _ = if stream == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(bytes).and_then(|()| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes).and_then(|()| o.flush())
        };
    }

    /// A line of text of kmodlab's (or the console's) on the terminal, after the line the shell
    /// was writing, if any; on standard error without a terminal.
    fn line(&mut self, text: &str) {
        let mut s = String::new();
        if self.tty && !self.at_line_start {
            s.push_str("\r\n");
        }
        let eol = if self.tty { "\r\n" } else { "\n" };
        for l in text.lines() {
            s.push_str(l);
            s.push_str(eol);
        }
        self.out(if self.tty { 1 } else { 2 }, s.as_bytes());
    }

    /// The files of an item as the guest gets them.
    fn item_files(&self, item: &Item) -> Vec<(String, Vec<u8>)> {
        let base = item.guest_path();
        match item {
            Item::Ko(p) => std::fs::read(p)
                .map(|d| vec![(base.clone(), d)])
                .unwrap_or_default(),
            Item::Dir(dir) => {
                let mut files = Vec::new();
                let Ok(entries) = std::fs::read_dir(dir) else {
                    return files;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| is_source(n) || n.ends_with(".ko"))
                    .collect();
                names.sort();
                for n in names {
                    if let Ok(d) = std::fs::read(dir.join(&n)) {
                        files.push((format!("{base}/{n}"), d));
                    }
                }
                files
            }
        }
    }
}

impl ShellHost for Host<'_> {
    fn files(&mut self) -> Vec<(String, Vec<u8>)> {
        let items = self.items.clone();
        items.iter().flat_map(|i| self.item_files(i)).collect()
    }

    fn changed(&mut self, which: usize) -> Vec<(String, Vec<u8>)> {
        let Some(item) = self.items.get(which).cloned() else {
            return Vec::new();
        };
        let Item::Dir(dir) = &item else {
            return Vec::new();
        };
        self.line(&format!("kmodlab: {} changed: rebuilding", dir.display()));
        let mut log = Vec::new();
        match kmodlab_kbuild::build(dir, &self.lab.kernel, &mut log) {
            Ok(kos) => {
                let names: Vec<String> = kos
                    .iter()
                    .filter_map(|k| k.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                self.line(&format!(
                    "kmodlab: rebuilt {}: new in {} (rmmod and insmod it again)",
                    names.join(", "),
                    item.guest_path()
                ));
                self.item_files(&item)
            }
            Err(kmodlab_kbuild::BuildError::Compile { errors, .. }) if !errors.is_empty() => {
                let mut text = format!("kmodlab: {} does not build:", dir.display());
                for e in errors {
                    text.push_str("\n  ");
                    text.push_str(&kmodlab_report::printable(&e));
                }
                self.line(&text);
                Vec::new()
            }
            Err(e) => {
                self.line(&format!("kmodlab: {}: {e}", dir.display()));
                Vec::new()
            }
        }
    }

    fn summary(&mut self, report: &CrashReport, run_dir: &Path) -> String {
        let mut reports = vec![report.clone()];
        let options = crate::AnalyzeOptions {
            module_files: self
                .items
                .iter()
                .flat_map(|i| match i {
                    Item::Ko(p) => vec![p.clone()],
                    Item::Dir(d) => kos_in(d),
                })
                .collect(),
            ..Default::default()
        };
        if let Ok(s) = crate::symbolizer(&options) {
            crate::enrich(&mut reports, &s, &[]);
        }
        crash_summary(&reports[0], run_dir)
    }

    fn output(&mut self, stream: u8, data: &[u8]) {
        self.at_line_start = data.ends_with(b"\n");
        self.out(stream, data);
    }

    fn console(&mut self, line: &str) {
        let text = kmodlab_report::printable(line);
        self.line(&text);
    }

    fn say(&mut self, text: &str) {
        self.line(text);
    }
}

fn kos_in(dir: &Path) -> Vec<PathBuf> {
    let mut kos: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ko"))
                .collect()
        })
        .unwrap_or_default();
    kos.sort();
    kos
}

/// kmodlab's paragraph about a crash report: what it is, where in the module's source, where
/// the whole report is.
pub fn crash_summary(r: &CrashReport, run_dir: &Path) -> String {
    let kind = r.kind.name();
    let mut s = format!("kmodlab: {kind}: {}", kmodlab_report::printable(&r.title));
    let place = match (&r.function, &r.module, &r.source) {
        (Some(f), Some(m), Some(src)) => format!("in {f} [{m}] at {src}"),
        (Some(f), Some(m), None) => format!("in {f} [{m}] (no source line: no debug info)"),
        (Some(f), None, Some(src)) => format!("in {f} at {src}"),
        (Some(f), None, None) => format!("in {f}"),
        _ => String::new(),
    };
    if !place.is_empty() {
        s.push_str("\n  ");
        s.push_str(&kmodlab_report::printable(&place));
    }
    if let Some(ctx) = &r.context {
        let at = ctx.line.checked_sub(ctx.first_line).map(|i| i as usize);
        if let Some(text) = at.and_then(|i| ctx.lines.get(i)) {
            s.push_str(&format!(
                "\n  {:>5} | {}",
                ctx.line,
                kmodlab_report::printable(text.trim_end())
            ));
        }
    }
    s.push_str(&format!(
        "\n  the whole report: {}/console.log",
        run_dir.display()
    ));
    s
}

/// Builds every directory (Kbuild's output on standard error, as `build` shows it); checks that
/// every `.ko` fits the kernel.
fn prepare(lab: &Lab, items: &[Item]) -> Result<(), LabError> {
    for item in items {
        match item {
            Item::Dir(dir) => {
                eprintln!(
                    "kmodlab: building {} for {}",
                    dir.display(),
                    lab.kernel.release
                );
                crate::check_rust_support(dir, &lab.kernel)?;
                kmodlab_kbuild::build(dir, &lab.kernel, &mut std::io::stderr()).map_err(
                    |e| match e {
                        kmodlab_kbuild::BuildError::Make(s) => LabError::Infra(s),
                        kmodlab_kbuild::BuildError::NotModuleDir(s) => LabError::Input(s),
                        other => LabError::Build(format!("{}: {other}", dir.display())),
                    },
                )?;
            }
            Item::Ko(ko) => {
                lab.prepare(ko, None, &mut std::io::sink())?;
            }
        }
    }
    Ok(())
}

/// Whether the session loop runs (and takes the signals that end it).
static LIVE: AtomicBool = AtomicBool::new(false);

/// The signals a shell handles itself: caught ([`tty::Signals::catch`]), then waited for by a
/// thread of their own.
pub const SIGNALS: [i32; 5] = [
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGWINCH,
];

/// Handles the caught [`SIGNALS`] from now on: the window size follows the terminal; the
/// others end the session (posted to `link`), and a session that does not end within seconds is
/// ended here, the terminal put back first. Before the session runs (a build, a boot), they end
/// kmodlab at once.
pub fn handle_signals(signals: tty::Signals, link: HostLink) {
    std::thread::spawn(move || loop {
        let sig = signals.wait();
        if sig == libc::SIGWINCH {
            if let Some(s) = tty::window_size(1).or_else(|| tty::window_size(0)) {
                link.post(HostEvent::Resize {
                    session: LOCAL,
                    size: TermSize {
                        rows: s.rows,
                        cols: s.cols,
                    },
                });
            }
            continue;
        }
        if !LIVE.load(Ordering::SeqCst) {
            tty::restore_terminal();
            std::process::exit(128 + sig);
        }
        link.post(HostEvent::Signal(sig));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            tty::restore_terminal();
            std::process::exit(128 + sig);
        });
    });
}

/// Runs a shell session on `lab` (see the `shell` command's help), taking host events from
/// `link` (where [`handle_signals`] posts); returns the exit status kmodlab should end with.
pub fn run(
    lab: &Lab,
    options: ShellOptions,
    link: HostLink,
    sink: &mut dyn FnMut(&Event),
) -> Result<i32, LabError> {
    if lab.userland.is_none() {
        return Err(LabError::Infra(
            "no static busybox for the guest's shell: install busybox-static (scripts/setup), \
             or name one with KMODLAB_BUSYBOX"
                .into(),
        ));
    }
    prepare(lab, &options.items)?;
    let stdin_tty = tty::is_terminal(0) && options.command.is_none();
    let tty_mode = stdin_tty && tty::is_terminal(1);
    let size = tty_mode
        .then(|| tty::window_size(1).or_else(|| tty::window_size(0)))
        .map(|s| {
            s.map_or(TermSize { rows: 24, cols: 80 }, |s| TermSize {
                rows: s.rows,
                cols: s.cols,
            })
        });
    let run_dir = lab.new_run_dir("shell");
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| LabError::Infra(format!("{}: {e}", run_dir.display())))?;

    LIVE.store(true, Ordering::SeqCst);
    // Input: keys from the terminal, or standard input to its end, or nothing (-c).
    if options.command.is_some() && !stdin_tty {
        // Commands with standard input that is no terminal: it is theirs.
        spawn_input(link.clone(), true);
    } else if options.command.is_some() {
        link.post(HostEvent::InputClosed { session: LOCAL });
    } else {
        spawn_input(link.clone(), !tty_mode);
    }

    // Sources watched: a burst of writes is one change.
    for (i, item) in options.items.iter().enumerate() {
        if let Item::Dir(dir) = item {
            watch(dir.clone(), i, link.clone());
        }
    }

    // Second terminals.
    let socket = kmodlab_vm::shell::attach_socket(&run_dir);
    if let Ok(listener) = UnixListener::bind(&socket) {
        let link = link.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                // One line only: what follows is the session's, read by its relay.
                let mut first = String::new();
                if BufReader::new(reader).read_line(&mut first).is_err() {
                    continue;
                }
                let hello = AttachMessage::read_all(first.as_bytes()).next();
                if let Some(AttachMessage::Hello { term, size }) = hello {
                    link.post(HostEvent::Attach(Attached { stream, term, size }));
                }
            }
        });
    }

    let cwd = options
        .items
        .iter()
        .find(|i| matches!(i, Item::Dir(_)))
        .map(Item::guest_path)
        .unwrap_or_else(|| GUEST_LAB_DIR.to_string());
    let mut boot = lab.boot_spec(run_dir.clone(), Duration::from_secs(120));
    let gdb = match options.gdb {
        false => None,
        true => {
            boot.gdb_stub = true;
            boot.kernel_args.push(kmodlab_vm::gdb::NOKASLR.into());
            Some(kmodlab_vm::gdb::AttachPlan {
                gdb: crate::debugger::find_gdb()?,
                symbols: crate::debugger::kernel_symbols(&lab.kernel.kdir, &lab.kernel.release),
                modules: module_files(&options.items),
            })
        }
    };
    let plan = kmodlab_vm::shell::ShellPlan {
        boot,
        cwd,
        command: options.command.clone(),
        tty: size,
        term: std::env::var("TERM").unwrap_or_else(|_| "linux".into()),
        link,
        gdb,
    };
    let mut host = Host {
        lab,
        items: options.items,
        tty: tty_mode,
        at_line_start: true,
        transcript: std::fs::File::create(run_dir.join("transcript.log")).ok(),
        written: 0,
    };
    if tty_mode {
        eprintln!(
            "kmodlab: shell in the lab VM ({}); run dir {}; exit or Ctrl-D ends it",
            lab.kernel.release,
            run_dir.display()
        );
    }
    let raw = raw_mode(tty_mode)?;
    let ended = kmodlab_vm::shell::run(&plan, &mut host, sink);
    drop(raw);
    LIVE.store(false, Ordering::SeqCst);
    let _ = std::fs::remove_file(&socket);
    match ended {
        Ok(ShellEnd::Exited(code)) => Ok(code),
        Ok(ShellEnd::PoweredOff) => {
            eprintln!("kmodlab: the guest powered off");
            Ok(0)
        }
        Ok(ShellEnd::Signal(sig)) => {
            eprintln!("kmodlab: ended by {}", kmodlab_sys::signal_name(sig));
            Ok(128 + sig)
        }
        Ok(ShellEnd::GuestLost(why)) => Err(LabError::Build(format!(
            "{why}; the commands after it did not run (run dir {})",
            run_dir.display()
        ))),
        Err(e) => Err(LabError::Infra(e.to_string())),
    }
}

/// The local terminal in raw mode, when there is one.
fn raw_mode(tty_mode: bool) -> Result<Option<tty::RawMode>, LabError> {
    tty_mode
        .then(|| tty::RawMode::enter(0))
        .transpose()
        .map_err(|e| LabError::Infra(format!("cannot set up the terminal: {e}")))
}

/// Reads standard input and posts it as the local session's input; with `eof`, its end too.
fn spawn_input(link: HostLink, eof: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => link.post(HostEvent::Input {
                    session: LOCAL,
                    data: buf[..n].to_vec(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if eof {
            link.post(HostEvent::InputClosed { session: LOCAL });
        }
    });
}

/// Watches a module directory's sources; each settled burst of changes is one event.
fn watch(dir: PathBuf, which: usize, link: HostLink) {
    let Ok(watcher) = kmodlab_sys::DirWatch::new(&dir) else {
        return;
    };
    std::thread::spawn(move || loop {
        let Ok(names) = watcher.wait(None) else {
            return;
        };
        if !names.iter().any(|n| is_source(n)) {
            continue;
        }
        while let Ok(more) = watcher.wait(Some(Duration::from_millis(150))) {
            if more.is_empty() {
                break;
            }
        }
        link.post(HostEvent::Changed(which));
    });
}

/// `kmodlab shell --attach`: a second terminal on the newest running session under `runs_dir`.
/// `signals` are the caught [`SIGNALS`].
pub fn attach(runs_dir: &Path, signals: tty::Signals) -> Result<i32, LabError> {
    let mut sockets: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(runs_dir)
        .map(|d| {
            d.flatten()
                .map(|e| kmodlab_vm::shell::attach_socket(&e.path()))
                .filter_map(|s| {
                    let t = std::fs::symlink_metadata(&s)
                        .and_then(|m| m.modified())
                        .ok()?;
                    Some((t, s))
                })
                .collect()
        })
        .unwrap_or_default();
    sockets.sort_by_key(|s| std::cmp::Reverse(s.0));
    let stream = sockets
        .iter()
        .find_map(|(_, s)| UnixStream::connect(s).ok())
        .ok_or_else(|| {
            LabError::Infra(format!(
                "no running kmodlab shell to attach to (looked for shell.sock in {})",
                runs_dir.display()
            ))
        })?;
    let tty_mode = tty::is_terminal(0) && tty::is_terminal(1);
    let size = tty::window_size(1)
        .or_else(|| tty::window_size(0))
        .map(|s| TermSize {
            rows: s.rows,
            cols: s.cols,
        });
    let mut writer = stream
        .try_clone()
        .map_err(|e| LabError::Infra(e.to_string()))?;
    AttachMessage::Hello {
        term: std::env::var("TERM").unwrap_or_else(|_| "linux".into()),
        size: tty_mode.then_some(size).flatten(),
    }
    .write_to(&mut writer)
    .map_err(|e| LabError::Infra(format!("cannot attach: {e}")))?;
    {
        let mut w = writer
            .try_clone()
            .map_err(|e| LabError::Infra(e.to_string()))?;
        std::thread::spawn(move || loop {
            let sig = signals.wait();
            if sig == libc::SIGWINCH {
                if let Some(s) = tty::window_size(1).or_else(|| tty::window_size(0)) {
                    let _ = AttachMessage::Resize {
                        size: TermSize {
                            rows: s.rows,
                            cols: s.cols,
                        },
                    }
                    .write_to(&mut w);
                }
                continue;
            }
            tty::restore_terminal();
            let _ = w.shutdown(std::net::Shutdown::Both);
            std::process::exit(128 + sig);
        });
    }
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
            let msg = AttachMessage::Data {
                data: kmodlab_proto::base64_encode(&buf[..n]),
            };
            if msg.write_to(&mut writer).is_err() {
                break;
            }
        }
    });
    let raw = raw_mode(tty_mode)?;
    let eol = if tty_mode { "\r\n" } else { "\n" };
    let mut code = 0;
    for msg in AttachMessage::read_all(BufReader::new(stream)) {
        match msg {
            AttachMessage::Data { data } => {
                let bytes = kmodlab_proto::base64_decode(&data).unwrap_or_default();
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&bytes);
                let _ = o.flush();
            }
            AttachMessage::Say { text } => {
                let mut o = std::io::stdout().lock();
                let _ = write!(o, "{eol}{}{eol}", kmodlab_report::printable(&text));
                let _ = o.flush();
            }
            AttachMessage::Exit { code: c } => {
                code = c;
                break;
            }
            _ => {}
        }
    }
    drop(raw);
    Ok(code)
}
