//! What a kernel build reports while it runs, and a renderer for standard error.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One step of a kernel build, as it happens.
#[derive(Clone, Debug, PartialEq)]
pub enum BuildEvent {
    /// Another kmodlab holds the lock of the same kernel; waiting for it.
    Waiting {
        /// The lock file.
        lock: PathBuf,
    },
    /// A new stage: `extracting ...`, `configuring ...`, `compiling ...`.
    Stage(String),
    /// While compiling: the number of objects compiled so far.
    Compiled(usize),
    /// Something the user should know that does not stop the build (`building without Rust:
    /// ...`).
    Note(String),
    /// The build finished (successfully or not).
    Finished,
}

/// Whether a line of make's output reports one compiled, archived or linked object
/// (`  CC      init/main.o`, `  RUSTC L rust/core.o`, `  AR      lib/lib.a`, `  LD      vmlinux.o`).
pub fn is_object_line(line: &str) -> bool {
    ["  CC ", "  RUSTC ", "  AR ", "  LD "]
        .iter()
        .any(|p| line.starts_with(p))
}

/// Counts compiled objects in make's output, line by line.
#[derive(Clone, Debug, Default)]
pub struct ObjectCounter {
    /// Objects seen so far.
    pub objects: usize,
}

impl ObjectCounter {
    /// Counts `line`; true when it was an object line.
    pub fn line(&mut self, line: &str) -> bool {
        let hit = is_object_line(line);
        self.objects += usize::from(hit);
        hit
    }
}

/// Renders [`BuildEvent`]s on standard error: one line per stage and, while compiling, the object
/// count updated in place on a terminal, or printed every `interval` otherwise.
pub struct StderrProgress {
    tty: bool,
    interval: Duration,
    last: Option<Instant>,
    started: Instant,
    open_line: bool,
}

impl StderrProgress {
    /// A renderer for this process's standard error (in place when it is a terminal).
    pub fn new() -> StderrProgress {
        use std::io::IsTerminal;
        StderrProgress::with(std::io::stderr().is_terminal(), Duration::from_secs(10))
    }

    /// A renderer that draws in place (`tty`) or prints a line every `interval`.
    pub fn with(tty: bool, interval: Duration) -> StderrProgress {
        StderrProgress {
            tty,
            interval,
            last: (!tty).then(Instant::now),
            started: Instant::now(),
            open_line: false,
        }
    }

    /// Renders one event to `out`.
    pub fn render(&mut self, event: &BuildEvent, out: &mut dyn Write) {
        let close = |this: &mut StderrProgress, out: &mut dyn Write| {
            if this.open_line {
                let _ = write!(out, "\r\x1b[2K");
                this.open_line = false;
            }
        };
        match event {
            BuildEvent::Waiting { lock } => {
                close(self, out);
                let _ = writeln!(
                    out,
                    "kmodlab: kernel: another kmodlab is building this kernel; waiting for {}",
                    lock.display()
                );
            }
            BuildEvent::Stage(s) => {
                close(self, out);
                self.started = Instant::now();
                self.last = (!self.tty).then_some(self.started);
                let _ = writeln!(out, "kmodlab: kernel: {s}");
            }
            BuildEvent::Note(s) => {
                close(self, out);
                let _ = writeln!(out, "kmodlab: kernel: {s}");
            }
            BuildEvent::Compiled(n) => {
                let now = Instant::now();
                let gap = if self.tty {
                    Duration::from_millis(100)
                } else {
                    self.interval
                };
                if self.last.is_some_and(|t| now.duration_since(t) < gap) {
                    return;
                }
                self.last = Some(now);
                let secs = now.duration_since(self.started).as_secs();
                let msg = format!(
                    "kmodlab: kernel: compiling: {n} objects ({}:{:02})",
                    secs / 60,
                    secs % 60
                );
                if self.tty {
                    let _ = write!(out, "\r\x1b[2K{msg}");
                    self.open_line = true;
                } else {
                    let _ = writeln!(out, "{msg}");
                }
            }
            BuildEvent::Finished => close(self, out),
        }
        let _ = out.flush();
    }

    /// Renders one event to standard error.
    pub fn event(&mut self, event: &BuildEvent) {
        self.render(event, &mut std::io::stderr().lock());
    }
}

impl Default for StderrProgress {
    fn default() -> StderrProgress {
        StderrProgress::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_lines_are_counted_from_make_output() {
        let sample = "\
  SYNC    include/config/auto.conf
  HOSTCC  scripts/basic/fixdep
  CC      init/main.o
  RUSTC L rust/core.o
  RUSTC P rust/libmacros.so
  BINDGEN rust/bindings/bindings_generated.rs
  AS      arch/x86/entry/entry_64.o
  AR      lib/lib.a
  LD      vmlinux.o
  LDS     arch/x86/kernel/vmlinux.lds
  CC [M]  fs/foo.o
  HOSTLD  scripts/kconfig/conf
init/main.c:10:5: warning: unused variable 'x'
make[2]: *** [scripts/Makefile.build:229: init/main.o] Error 1
";
        let mut c = ObjectCounter::default();
        for l in sample.lines() {
            c.line(l);
        }
        assert_eq!(c.objects, 6);
    }

    #[test]
    fn without_a_terminal_the_count_is_printed_every_interval() {
        let mut p = StderrProgress::with(false, Duration::from_millis(50));
        let mut out = Vec::new();
        p.render(
            &BuildEvent::Stage("compiling with make -j2".into()),
            &mut out,
        );
        for i in 1..=3 {
            p.render(&BuildEvent::Compiled(i), &mut out);
        }
        std::thread::sleep(Duration::from_millis(60));
        p.render(&BuildEvent::Compiled(4), &mut out);
        p.render(&BuildEvent::Finished, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kmodlab: kernel: compiling with make -j2");
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[1].starts_with("kmodlab: kernel: compiling: 4 objects"),
            "{text}"
        );
    }

    #[test]
    fn on_a_terminal_the_count_is_one_line_updated_in_place() {
        let mut p = StderrProgress::with(true, Duration::from_secs(10));
        let mut out = Vec::new();
        p.render(&BuildEvent::Compiled(1), &mut out);
        p.render(&BuildEvent::Compiled(2), &mut out);
        p.render(
            &BuildEvent::Note("building without Rust: x".into()),
            &mut out,
        );
        p.render(&BuildEvent::Stage("done".into()), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("\r\x1b[2Kkmodlab: kernel: compiling: 1 objects"),
            "{text:?}"
        );
        assert!(!text.contains("2 objects"), "throttled: {text:?}");
        assert!(
            text.ends_with(
                "\r\x1b[2Kkmodlab: kernel: building without Rust: x\nkmodlab: kernel: done\n"
            ),
            "{text:?}"
        );
    }
}
