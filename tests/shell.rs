//! `kmodlab shell` end to end, driven through a real PTY as a user's terminal would: the lab's
//! own transcript, crash summaries, job control, window sizes, the console log level, a panic
//! that gives a fresh guest, rebuild on save, a second terminal, and the ends that must leave no
//! QEMU and the terminal as it was.

mod util;
use kmodlab_sys::tty::{self, Pty, WinSize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

/// A program on a PTY, read like a terminal: everything it printed is kept, and a cursor
/// position query (busybox's line editing asks) is answered as a terminal would.
struct Term {
    master: File,
    /// The slave side, kept open to read the terminal's settings after the program ended.
    slave: File,
    child: Child,
    /// Everything read so far.
    seen: String,
    /// Where the next `expect` starts looking.
    from: usize,
    name: String,
}

impl Term {
    fn spawn(name: &str, args: &[&str], runs: &Path) -> Term {
        let pty = Pty::open(Some(WinSize { rows: 24, cols: 80 })).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmodlab"));
        cmd.current_dir(repo())
            .args(args)
            .env("KMODLAB_RUNS", runs)
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        tty::controlling_terminal(&mut cmd);
        let child = cmd.spawn().unwrap();
        Term {
            master: pty.master,
            slave: pty.slave,
            child,
            seen: String::new(),
            from: 0,
            name: name.to_string(),
        }
    }

    fn pump(&mut self, wait_ms: i32) -> bool {
        if !tty::poll_readable(self.master.as_raw_fd(), wait_ms).unwrap_or(false) {
            return false;
        }
        let mut buf = [0u8; 8192];
        match self.master.read(&mut buf) {
            Ok(n) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains("\x1b[6n") {
                    let _ = self.master.write_all(b"\x1b[1;1R");
                }
                self.seen.push_str(&text.replace("\x1b[6n", ""));
                true
            }
            _ => false,
        }
    }

    /// Waits for `needle` after what earlier expectations took; returns the text up to it.
    fn expect(&mut self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(i) = self.seen[self.from..].find(needle) {
                let got = self.seen[self.from..self.from + i + needle.len()].to_string();
                self.from += i + needle.len();
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no {needle:?} within {secs}s; the terminal showed:\n{}",
                    self.name, self.seen
                );
            }
            self.pump(200);
        }
    }

    /// Whether `needle` shows up after position `mark` within `secs` (without taking it).
    fn shows(&mut self, mark: usize, needle: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.seen[mark..].contains(needle) {
                return true;
            }
            self.pump(200);
        }
        self.seen[mark..].contains(needle)
    }

    /// Reads until nothing comes for half a second and skips it all (a prompt redrawn after a
    /// resize).
    fn settle(&mut self) {
        while self.pump(500) {}
        self.from = self.seen.len();
    }

    fn send(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Runs a command line at the prompt `prompt` and returns what it printed.
    fn run(&mut self, line: &str, prompt: &str) -> String {
        self.send(&format!("{line}\r"));
        self.expect(prompt, 120)
    }

    /// Reads kdb's output to its prompt, turning its pages (`more> `) with a space; returns it.
    fn kdb_pages(&mut self, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = self.from;
        loop {
            if let Some(i) = self.seen[self.from..].find("kdb> ") {
                self.from += i + "kdb> ".len();
                return self.seen[start..self.from].to_string();
            }
            if let Some(i) = self.seen[self.from..].find("more> ") {
                self.from += i + "more> ".len();
                self.send(" ");
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: kdb did not come back within {secs}s:\n{}",
                    self.name, self.seen
                );
            }
            self.pump(200);
        }
    }

    fn wait(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.pump(100);
            if let Some(s) = self.child.try_wait().unwrap() {
                while self.pump(50) {}
                return Some(s);
            }
        }
        None
    }

    fn lflag(&self) -> libc::tcflag_t {
        // SAFETY: zeroed termios filled by tcgetattr on a valid descriptor.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) };
        t.c_lflag
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prompt(dir: &str) -> String {
    format!("kmodlab-vm:/lab/{dir}# ")
}

/// The lab followed by hand on the Debian kernel, in one session.
#[test]
fn shell_follows_the_lab_by_hand() {
    let runs = scratch("shell");
    // The hello module is a copy: the test edits it.
    let hello = runs.join("src").join("1-2-test-mod");
    copy_module(&repo().join("labs/kernel_modules/1-2-test-mod"), &hello);
    let hello_arg = hello.display().to_string();
    let mut t = Term::spawn(
        "shell",
        &[
            "shell",
            &hello_arg,
            "labs/kernel_modules/5-oops-mod",
            "labs/kernel_modules/6-cmd-mod",
            "tests/modules/panic",
            "tests/modules/warn",
        ],
        &runs,
    );
    let lflag_before = t.lflag();
    let p = prompt("1-2-test-mod");
    t.expect(&p, 300);
    let raw = t.lflag();
    assert_eq!(raw & (libc::ECHO | libc::ICANON), 0, "the terminal is raw");

    // The lab's transcript.
    t.run("insmod hello_mod.ko", &p);
    let out = t.run("dmesg | tail -1", &p);
    assert!(out.contains("Hello!\r\n"), "{out}");
    let out = t.run("ls /sys/module | grep hello", &p);
    assert!(out.contains("hello_mod\r\n"), "{out}");
    t.run("rmmod hello_mod", &p);
    let out = t.run("dmesg -t | tail -2", &p);
    assert!(out.contains("\r\nHello!\r\nGoodbye!\r\n"), "{out}");
    // kmodlab's lsmod, not busybox's.
    let out = t.run("lsmod; type lsmod", &p);
    assert!(!out.contains("Not tainted"), "busybox's lsmod ran: {out}");

    // pr_debug on the console only once the console log level lets it through: so far the
    // only stamped "Hello!" is the one `dmesg | tail -1` printed.
    assert_eq!(
        t.seen.matches("] Hello!").count(),
        1,
        "pr_debug reached the console at level 7:\n{}",
        t.seen
    );
    t.run("echo 8 > /proc/sys/kernel/printk", &p);
    t.run("insmod hello_mod.ko && rmmod hello_mod", &p);
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.seen.matches("] Hello!").count() < 2 && Instant::now() < deadline {
        t.pump(200);
    }
    assert_eq!(
        t.seen.matches("] Hello!").count(),
        2,
        "no pr_debug line on the console"
    );

    // A panic: a summary with the source line, then a fresh guest and a new prompt. (Before
    // the oops below: after an oops, the kernel prints no stack for a panic.)
    t.run("insmod hello_mod.ko", &p);
    t.send("insmod /lab/panic/panic.ko\r");
    t.expect("panic.c:20", 120);
    t.expect("restoring a fresh guest", 60);
    t.expect(&p, 180);
    let out = t.run("grep -c hello_mod /proc/modules; ls", &p);
    assert!(
        out.contains("\r\n0\r\n"),
        "a fresh guest has nothing loaded: {out}"
    );
    assert!(out.contains("hello_mod.ko"), "{out}");

    // An oops kills insmod; the summary names the source line; the shell goes on.
    let oops = prompt("5-oops-mod");
    let mark = t.from;
    let out = t.run("cd ../5-oops-mod && insmod oops_mod.ko", &oops);
    assert!(out.contains("Killed"), "{out}");
    assert!(
        t.shows(mark, "oops_mod.c:23", 20),
        "no summary naming oops_mod.c:23:\n{}",
        &t.seen[mark..]
    );
    let out = t.run("echo still here", &oops);
    assert!(out.contains("still here\r\n"), "{out}");

    // Parameters.
    let cmd = prompt("6-cmd-mod");
    let out = t.run(
        "cd ../6-cmd-mod && insmod cmd_mod.ko str=tired && rmmod cmd_mod && dmesg -t | grep Early",
        &cmd,
    );
    assert!(out.contains("Early bird gets tired\r\n"), "{out}");

    // Whatever the console log level, a crash report is caught and summarized: at level 1 the
    // console shows nothing of this WARN (all of it is level 4 and up).
    let mark = t.from;
    t.run(
        "echo 1 > /proc/sys/kernel/printk && insmod /lab/warn/warn.ko",
        &cmd,
    );
    assert!(
        t.shows(mark, "kmodlab: warning: WARNING in warn_init", 30),
        "no summary of the WARN at console level 1:\n{}",
        &t.seen[mark..]
    );
    assert!(
        !t.seen[mark..].contains("] WARNING:"),
        "the console showed the WARN at level 1:\n{}",
        &t.seen[mark..]
    );
    assert!(t.shows(mark, "warn.c:", 5), "{}", &t.seen[mark..]);

    // Ctrl-C interrupts the guest's command, not kmodlab.
    let started = Instant::now();
    t.send("sleep 100\r");
    std::thread::sleep(Duration::from_secs(1));
    t.send("\x03");
    t.expect(&cmd, 30);
    assert!(started.elapsed() < Duration::from_secs(60));

    // The window size follows the terminal.
    tty::set_window_size(
        t.master.as_raw_fd(),
        WinSize {
            rows: 41,
            cols: 133,
        },
    )
    .unwrap();
    t.settle();
    let out = t.run("stty size", &cmd);
    assert!(out.contains("41 133\r\n"), "{out}");

    // Saving the source rebuilds the module in the guest.
    let src = hello.join("hello_mod.c");
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, text.replace("\"Hello!\\n\"", "\"Hello again!\\n\"")).unwrap();
    t.expect("kmodlab: rebuilt hello_mod.ko", 120);
    let out = t.run(
        "cd /lab/1-2-test-mod && insmod hello_mod.ko && dmesg -t | tail -1",
        &p,
    );
    assert!(out.contains("Hello again!\r\n"), "{out}");
    // A save that does not compile says where, and leaves the guest's module as it was.
    let good = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, good.replace("return 0;", "return 0")).unwrap();
    t.expect("does not build:", 120);
    t.expect("hello_mod.c:", 10);
    std::fs::write(&src, &good).unwrap();
    t.expect("kmodlab: rebuilt hello_mod.ko", 120);

    // A second terminal while the first follows the kernel log.
    t.send("dmesg -w -t\r");
    t.expect("Hello again!", 30);
    let mut second = Term::spawn("attached", &["shell", "--attach"], &runs);
    let second_prompt = prompt("1-2-test-mod");
    second.expect(&second_prompt, 60);
    second.run("rmmod hello_mod", &second_prompt);
    t.expect("Goodbye!", 30);
    second.send("exit\r");
    let status = second.wait(30).expect("the attached kmodlab did not end");
    assert_eq!(status.code(), Some(0));
    t.send("\x03");
    t.expect(&p, 30);

    // SIGHUP ends it: no QEMU left, the terminal as it was.
    // SAFETY: plain syscall on the child's pid.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGHUP) };
    let status = t.wait(30).expect("kmodlab did not end on SIGHUP");
    assert_eq!(status.code(), Some(128 + libc::SIGHUP), "{}", t.seen);
    assert_no_qemu_left(&runs);
    assert_eq!(t.lflag(), lflag_before, "the terminal was not put back");
    let transcripts: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("transcript.log"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(transcripts.len(), 1);
    let transcript = std::fs::read_to_string(&transcripts[0]).unwrap();
    assert!(transcript.contains("Early bird gets tired"));
}

/// Commands without a terminal: output on standard output, console lines on standard error,
/// the shell's exit status; `exit` and `poweroff` end it; the terminal setting is untouched.
#[test]
fn shell_runs_commands_without_a_terminal() {
    let runs = scratch("shell-c");
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "shell",
            "labs/kernel_modules/6-cmd-mod",
            "-c",
            "insmod cmd_mod.ko 'str=\"two words\"' && cat /sys/module/cmd_mod/parameters/str 2>&1; \
             ls /sys/kernel/debug | grep -c . ; exit 7",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("Early bird"),
        "console lines go to stderr: {stdout}"
    );
    assert!(
        stderr.contains("Early bird gets two words"),
        "{}",
        show(&out)
    );
    // debugfs is mounted: it has entries.
    let n: u32 = stdout
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(n > 0, "{}", show(&out));

    // Standard input that is no terminal is the shell's.
    let mut child = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from stdin $((6*7))\npoweroff\nsleep 60\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from stdin 42\n"),
        "{}",
        show(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_no_qemu_left(&runs);
    // The sessions' files stay, their sockets do not.
    for run in std::fs::read_dir(&runs).unwrap().flatten() {
        let run = run.path();
        assert!(run.join("console.log").is_file(), "{}", run.display());
        for socket in ["agent.sock", "qmp.sock", "shell.sock"] {
            assert!(
                !run.join(socket).exists(),
                "{} left",
                run.join(socket).display()
            );
        }
    }
}

/// The same by hand on the Rust lab kernel with the Rust lab's modules: the transcript, the
/// console log level, an oops with its `.rs` line, a parameter, rebuild on save.
#[test]
fn shell_follows_the_rust_lab_by_hand() {
    let runs = scratch("shell-rust");
    let hello = runs.join("src").join("1-2-test-mod");
    copy_module(&repo().join("labs/rust/1-2-test-mod"), &hello);
    let hello_arg = hello.display().to_string();
    let mut t = Term::spawn(
        "shell-rust",
        &[
            "shell",
            &hello_arg,
            "labs/rust/5-oops-mod",
            "labs/rust/6-cmd-mod",
        ],
        &runs,
    );
    let p = prompt("1-2-test-mod");
    // The Rust lab kernel is built first when the cache lacks it.
    t.expect(&p, 2400);
    let out = t.run("uname -r", &p);
    assert!(out.contains("7."), "not the Rust lab kernel: {out}");
    t.run("insmod hello_mod.ko && rmmod hello_mod", &p);
    let out = t.run("dmesg -t | tail -2", &p);
    assert!(
        out.contains("\r\nhello_mod: Hello!\r\nhello_mod: Goodbye!\r\n"),
        "{out}"
    );
    assert!(!t.seen.contains("] hello_mod: Hello!"), "{}", t.seen);
    t.run("echo 8 > /proc/sys/kernel/printk", &p);
    t.run("insmod hello_mod.ko && rmmod hello_mod", &p);
    assert!(
        t.shows(0, "] hello_mod: Hello!", 20),
        "no pr_debug line on the console"
    );

    let oops = prompt("5-oops-mod");
    let mark = t.from;
    let out = t.run("cd ../5-oops-mod && insmod oops_mod.ko", &oops);
    assert!(out.contains("Killed"), "{out}");
    assert!(
        t.shows(mark, "oops_mod.rs:28", 20),
        "no summary naming oops_mod.rs:28:\n{}",
        &t.seen[mark..]
    );

    let cmd = prompt("6-cmd-mod");
    let out = t.run(
        "cd ../6-cmd-mod && insmod cmd_mod.ko str=tired && rmmod cmd_mod && dmesg -t | grep Early",
        &cmd,
    );
    assert!(out.contains("cmd_mod: Early bird gets tired\r\n"), "{out}");

    let src = hello.join("hello_mod.rs");
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, text.replace("\"Hello!\\n\"", "\"Hello again!\\n\"")).unwrap();
    t.expect("kmodlab: rebuilt hello_mod.ko", 300);
    let out = t.run(
        "cd /lab/1-2-test-mod && insmod hello_mod.ko && dmesg -t | tail -1",
        &p,
    );
    assert!(out.contains("hello_mod: Hello again!\r\n"), "{out}");

    t.send("exit 5\r");
    let status = t.wait(30).expect("kmodlab did not end on exit");
    assert_eq!(status.code(), Some(5), "{}", t.seen);
    assert_no_qemu_left(&runs);
}

/// A guest that stops answering (init spinning without ever scheduling) is reported, its soft
/// lockup summarized, and replaced by a fresh one with a new prompt; with -c, the commands end
/// with exit status 1 saying so.
/// Lab step 8, KDB, on the debug lab kernel: with kgdboc on the serial console, sysrq-g stops
/// the machine in kdb and the terminal talks to it (ps, bt, lsmod) until `go`; then the shell goes
/// on. A BUG in a module stops in kdb too: bt names the module's function, and after `go` the
/// oops is summarized with its source line.
#[test]
fn shell_talks_to_kdb_on_the_debug_kernel() {
    let runs = scratch("shell-kdb");
    let mut t = Term::spawn(
        "shell-kdb",
        &[
            "shell",
            "--lab-kernel",
            "debug",
            "labs/kernel_modules/8-kdb",
        ],
        &runs,
    );
    let p = prompt("8-kdb");
    t.expect(&p, 3000);
    t.run("echo ttyS0 > /sys/module/kgdboc/parameters/kgdboc", &p);
    t.send("echo g > /proc/sysrq-trigger\r");
    t.expect("Entering kdb", 60);
    t.expect("your keys go to it", 10);
    t.expect("kdb> ", 30);
    t.send("ps\r");
    let ps = t.expect("kdb> ", 60);
    assert!(ps.contains("Command"), "{ps}");
    assert!(ps.contains("*sh"), "the shell wrote to sysrq-trigger: {ps}");
    t.send("lsmod\r");
    let lsmod = t.expect("kdb> ", 60);
    assert!(lsmod.contains("Module"), "{lsmod}");
    t.send("go\r");
    // The shell's `echo g` ends once kdb gives the machine back: its prompt comes then.
    t.expect(&p, 60);
    let out = t.run("echo back in the shell", &p);
    assert!(out.contains("back in the shell\r\n"), "{out}");

    // The lab's module: a BUG on demand stops in kdb; bt names it; go lets the oops go on.
    bug_stops_in_kdb(
        &mut t,
        &p,
        "/proc/kdb_bug",
        &["kdb_bug_func", "kdb_bug_write"],
        "in kdb_bug_func [kdb_mod] at kdb_mod.c:29",
    );
    t.send("exit 0\r");
    assert_eq!(t.wait(60).and_then(|s| s.code()), Some(0), "{}", t.seen);
    assert_no_qemu_left(&runs);
}

/// With kgdboc on the serial console: loads kdb_mod, whose BUG on a write to `file` stops the
/// machine in kdb; `bt` names each of `frames`; `go` until the shell summarizes the crash with
/// `summary`; then the shell goes on.
fn bug_stops_in_kdb(t: &mut Term, p: &str, file: &str, frames: &[&str], summary: &str) {
    // kgdb lets an oops through on a kernel set to reboot on panic (kmodlab's guests are).
    t.run(
        "echo 0 > /proc/sys/kernel/panic && insmod kdb_mod.ko && lsmod | grep -c kdb_mod",
        p,
    );
    // In a shell of its own: the oops kills the process that writes (echo is a builtin).
    t.send(&format!("sh -c 'echo 1 > {file}'\r"));
    t.expect("Entering kdb", 60);
    // kdb shows the oops, then the backtrace, a screen at a time.
    t.kdb_pages(60);
    t.send("bt\r");
    let bt = t.kdb_pages(90);
    for frame in frames {
        assert!(bt.contains(frame), "{frame} not in {bt}");
    }
    // After an oops kdb wants a second go, and the oops going on stops in kdb once more: go
    // until the shell summarizes the oops (its summary, not the kernel's own `kernel BUG at`).
    let mark = t.from;
    t.send("go\r");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !t.seen[mark..].contains(summary) {
        assert!(
            Instant::now() < deadline,
            "no summary {summary:?}:\n{}",
            &t.seen[mark..]
        );
        if let Some(i) = t.seen[t.from..].find("kdb> ") {
            t.from += i + "kdb> ".len();
            t.send("go\r");
        } else if let Some(i) = t.seen[t.from..].find("more> ") {
            t.from += i + "more> ".len();
            t.send(" ");
        }
        t.pump(200);
    }
    t.settle();
    let out = t.run("echo still here", p);
    assert!(out.contains("still here\r\n"), "{out}");
}

/// The Rust lab's step 8 on the debug lab kernel, built with Rust too: a `panic!` on a write to
/// the misc device /dev/kdb_bug hits `BUG()` and stops in kdb like C's; bt names the module's
/// function (v0-mangled), and the shell's summary gives it demangled, with its `.rs` line.
#[test]
fn shell_stops_in_kdb_on_a_rust_panic() {
    let runs = scratch("shell-kdb-rust");
    let mut t = Term::spawn(
        "shell-kdb-rust",
        &["shell", "--lab-kernel", "debug", "labs/rust/8-kdb"],
        &runs,
    );
    let p = prompt("8-kdb");
    t.expect(&p, 3000);
    t.run("echo ttyS0 > /sys/module/kgdboc/parameters/kgdboc", &p);
    let src = std::fs::read_to_string(repo().join("labs/rust/8-kdb/kdb_mod.rs")).unwrap();
    let line = src
        .lines()
        .position(|l| l.trim_start().starts_with("panic!("))
        .expect("the panic in kdb_mod.rs")
        + 1;
    bug_stops_in_kdb(
        &mut t,
        &p,
        "/dev/kdb_bug",
        &["7kdb_mod12kdb_bug_func", "rust_helper_BUG"],
        // The shell's summary, not the kernel's own `panicked at kdb_mod.rs:LINE:COL`.
        &format!("in kdb_mod::kdb_bug_func [kdb_mod] at kdb_mod.rs:{line}"),
    );
    t.send("exit 0\r");
    assert_eq!(t.wait(60).and_then(|s| s.code()), Some(0), "{}", t.seen);
    assert_no_qemu_left(&runs);
}

/// An oops in the shell's own task (a builtin `echo` into the module's file) kills the shell:
/// a new shell starts in the same guest, the module still loaded. A shell killed by a signal
/// with no oops still ends kmodlab with its status.
#[test]
fn shell_starts_a_new_shell_when_an_oops_kills_it() {
    let runs = scratch("shell-oops");
    let mut t = Term::spawn("shell-oops", &["shell", "labs/kernel_modules/8-kdb"], &runs);
    let p = prompt("8-kdb");
    t.expect(&p, 300);
    t.run("insmod kdb_mod.ko", &p);
    t.send("echo 1 > /proc/kdb_bug\r");
    t.expect("kdb_mod.c:", 120);
    t.expect(
        "the oops killed the shell; a new shell starts in the same guest",
        30,
    );
    t.expect(&p, 60);
    let out = t.run("echo alive-$((6*7)); grep -c kdb_mod /proc/modules", &p);
    assert!(out.contains("alive-42\r\n1\r\n"), "{out}");
    t.send("kill -9 $$\r");
    assert_eq!(t.wait(60).and_then(|s| s.code()), Some(137), "{}", t.seen);
    assert_no_qemu_left(&runs);
}

#[test]
fn shell_survives_a_hung_guest() {
    let runs = scratch("shell-hung");
    let mut t = Term::spawn("shell-hung", &["shell", "tests/modules/soft-lockup"], &runs);
    let p = prompt("soft-lockup");
    t.expect(&p, 300);
    t.send("insmod soft_lockup.ko seconds=1000\r");
    t.expect("soft_lockup.c:", 120);
    t.expect("it hangs", 120);
    t.expect("restoring a fresh guest", 30);
    t.expect(&p, 180);
    let out = t.run("echo alive; grep -c soft_lockup /proc/modules", &p);
    assert!(out.contains("alive\r\n0\r\n"), "{out}");
    t.send("exit 0\r");
    assert_eq!(t.wait(30).and_then(|s| s.code()), Some(0), "{}", t.seen);
    assert_no_qemu_left(&runs);
}

/// A guest printing far more than anyone reads: kmodlab's memory stays bounded (its readers
/// wait for the terminal instead of queueing), and everything arrives in the end. kmodlab's own
/// resident memory (its QEMU does not count) is sampled while its output stays unread, once the
/// guest is up: it must not grow. (With an unbounded queue it grew by about 0.5 MB/s here.)
#[test]
fn shell_memory_stays_bounded_under_a_flood() {
    let runs = scratch("shell-flood");
    // The saved state first, so that the flood's guest starts warm and quickly.
    let out = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args(["shell", "-c", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let bytes: usize = 20_000_000;
    let mut child = kmodlab()
        .env("KMODLAB_RUNS", &runs)
        .args([
            "shell",
            "-c",
            &format!("head -c {bytes} /dev/zero | tr '\\0' x; echo; echo END"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The guest is up once kmodlab says how it started.
    let (up_tx, up_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("restored the saved VM state") || line.contains("booted cold") {
                let _ = up_tx.send(());
            }
        }
    });
    up_rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the guest did not start");
    let rss_mb = |pid: u32| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb / 1024)
    };
    // Nobody reads for 25 s after the guest is up: the pipe fills and kmodlab must wait.
    // Samples from 5 s on (the guest prints by then).
    let up = Instant::now();
    let mut samples = Vec::new();
    while up.elapsed() < Duration::from_secs(25) {
        if up.elapsed() > Duration::from_secs(5) {
            samples.extend(rss_mb(child.id()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut n = 0usize;
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                tail.extend_from_slice(&buf[..k]);
                let keep = tail.len().saturating_sub(64);
                tail.drain(..keep);
            }
        }
    }
    let status = child.wait().unwrap();
    let tail = String::from_utf8_lossy(&tail);
    assert_eq!(status.code(), Some(0));
    assert_eq!(n, bytes + "\nEND\n".len(), "tail {tail:?}");
    assert!(tail.ends_with("xxx\nEND\n"), "{tail:?}");
    let (low, high) = (
        samples.iter().min().copied().unwrap_or(0),
        samples.iter().max().copied().unwrap_or(0),
    );
    eprintln!("kmodlab's resident memory while its output was unread: {low}-{high} MB");
    assert!(samples.len() > 10, "too few samples: {samples:?}");
    assert!(
        high - low < 4,
        "kmodlab grew from {low} to {high} MB: {samples:?}"
    );
    assert_no_qemu_left(&runs);
}
