//! Whether a module directory's last build is still current, decided from Kbuild's own records,
//! so that a run with nothing changed skips `make` (half a second to three seconds of Makefile
//! evaluation on a full kernel tree).
//!
//! Kbuild writes, for every target T it makes, a `.T.cmd` file: `savedcmd_T := COMMAND`, and for
//! compiled objects `source_T := FILE` and `deps_T := FILE ...` (every header the compiler read,
//! and `$(wildcard include/config/X)` for each configuration option used). `make` remakes T when
//! T is missing, when one of its prerequisites is missing or newer than T, or when the command
//! changed. The first two are decided here from the records alone, as `make` decides them. The
//! command can only change when what it is made of changes: the directory's Kbuild files, the
//! make variables and the environment, the kernel tree's configuration. Those are written into a
//! stamp ([`STAMP`]) when `make` starts and kept when it succeeds; any difference means `make`
//! runs. A new or removed file in the directory also means `make` runs (a Kbuild file may list
//! sources with `$(wildcard)`).
//!
//! The answer errs on one side only: when it says current, `make` would have remade nothing; when
//! it says stale, `make` usually remakes something, and at worst runs for nothing (a comment
//! edited in `Kbuild`).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::Kernel;

/// The stamp's file name in the module directory. It ends in `.cmd` so that Kbuild's `make clean`
/// removes it with its own records, and ignore rules for `.*.cmd` cover it.
pub const STAMP: &str = ".kmodlab-build.cmd";

/// Files of the kernel tree whose change changes the commands or the modpost inputs of every
/// module built against it.
const KERNEL_FILES: [&str; 8] = [
    "Makefile",
    ".config",
    "include/config/auto.conf",
    "include/generated/autoconf.h",
    "include/config/kernel.release",
    "Module.symvers",
    "scripts/module.lds",
    "vmlinux",
];

/// Environment variables that cannot change what `make` builds; every other variable can (make
/// imports the environment as variables, and a Kbuild file may use any of them).
const VOLATILE_ENV: [&str; 22] = [
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "WINDOW",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "SSH_AUTH_SOCK",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "MAIL",
    "LS_COLORS",
    "RUST_BACKTRACE",
    "RUST_LOG",
];
const VOLATILE_ENV_PREFIXES: [&str; 5] = ["KMODLAB_", "CARGO_", "XDG_", "NEXTEST", "RUST_TEST"];

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Every target Kbuild recorded exists and is newer than its prerequisites, and nothing that
    /// shapes the commands changed since the last successful `make`.
    Current,
    /// `make` must run; why, in a few words (`hello.c is newer than hello.o`).
    Stale(String),
}

/// 64-bit FNV-1a over the parts, each followed by a separator byte: stable across Rust releases
/// and machines, unlike `DefaultHasher`.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The stamp's text for `dir` built against `kernel` in the environment `env`: one line per fact,
/// so that the first differing line says what changed.
pub fn stamp_text(dir: &Path, kernel: &Kernel, env: &[(String, String)]) -> io::Result<String> {
    let mut s = String::from("# kmodlab: make runs again when a line of this stamp changes\n");
    let _ = writeln!(s, "kdir {}", kernel.kdir.display());
    let _ = writeln!(s, "release {}", kernel.release);
    for a in &kernel.make_args {
        let _ = writeln!(s, "arg {a}");
    }
    for (k, v) in &kernel.make_env {
        let _ = writeln!(s, "makeenv {k}={v}");
    }
    let mut vars: Vec<&(String, String)> = env.iter().filter(|(k, _)| shapes_build(k)).collect();
    vars.sort();
    for (k, v) in vars {
        // Hashed: the environment may hold secrets, and the stamp only needs to see a change.
        let _ = writeln!(s, "env {k} {:016x}", fnv1a(&[v]));
    }
    for f in KERNEL_FILES {
        if let Some(m) = meta(&kernel.kdir.join(f)) {
            let _ = writeln!(s, "kernel {f} {m}");
        }
    }
    for rel in walk(dir)? {
        let name = rel.to_string_lossy();
        if name == STAMP {
            continue;
        }
        let base = rel
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if shapes_commands(&base) || is_kbuild_record(&base) {
            let kind = if shapes_commands(&base) {
                "file"
            } else {
                "made"
            };
            let m = meta(&dir.join(&rel)).unwrap_or_else(|| "gone".into());
            let _ = writeln!(s, "{kind} {name} {m}");
        } else {
            let _ = writeln!(s, "name {name}");
        }
    }
    Ok(s)
}

/// Whether an environment variable can change what make builds (see [`VOLATILE_ENV`]).
fn shapes_build(name: &str) -> bool {
    !VOLATILE_ENV.contains(&name)
        && !VOLATILE_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Files of the module directory whose content shapes the commands (the Kbuild files): kept with
/// their time and size. Other files are kept by name only: sources and headers are judged by the
/// `.cmd` records.
fn shapes_commands(base: &str) -> bool {
    base == "Kbuild"
        || base == "Makefile"
        || base == "GNUmakefile"
        || base == "makefile"
        || base.starts_with("Kbuild.")
        || base.starts_with("Makefile.")
        || base.ends_with(".mk")
}

/// Files in which Kbuild records what it made (its `.cmd` files and lists): kept with their time
/// and size, so that a `make` run by hand since (maybe with other flags) is noticed.
fn is_kbuild_record(base: &str) -> bool {
    (base.starts_with('.') && base.ends_with(".cmd"))
        || base == "modules.order"
        || base == "Module.symvers"
        || base.ends_with(".mod")
}

/// Whether two stamps, taken before and after a `make`, agree on its inputs: the kernel, the
/// variables and the Kbuild files, not on what `make` made. When they do not (a Kbuild file
/// edited while make ran), the build is not recorded and the next one runs make again.
pub fn same_inputs(before: &str, after: &str) -> bool {
    let inputs = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("made ") && !l.starts_with("name "))
            .map(str::to_string)
            .collect()
    };
    inputs(before) == inputs(after)
}

/// A file's modification time (nanoseconds) and size, as one word.
fn meta(p: &Path) -> Option<String> {
    let m = std::fs::metadata(p).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}.{:09}:{}",
        t.as_secs(),
        t.subsec_nanos(),
        m.len()
    ))
}

/// Every file under `dir`, relative, sorted; hidden directories (`.git`, `.tmp_versions`) are
/// not entered.
fn walk(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let name = e.file_name();
            let ty = e.file_type()?;
            let r = rel.join(&name);
            if ty.is_dir() {
                if !name.to_string_lossy().starts_with('.') {
                    todo.push(r);
                }
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the stamp taken before a successful `make`.
pub fn record(dir: &Path, stamp: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{STAMP}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, stamp)?;
    std::fs::rename(&tmp, dir.join(STAMP)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Removes the stamp before `make` runs, so that a failed or interrupted build is never current.
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(STAMP));
}

/// Whether the last build of `dir` is current (see the module's documentation). `stamp` is
/// [`stamp_text`] now.
pub fn freshness(dir: &Path, kernel: &Kernel, stamp: &str) -> Freshness {
    let Ok(old) = std::fs::read_to_string(dir.join(STAMP)) else {
        return Freshness::Stale("no record of a previous build".into());
    };
    if let Some(why) = stamp_difference(&old, stamp) {
        return Freshness::Stale(why);
    }
    let mut times = Times::default();
    let files = match walk(dir) {
        Ok(f) => f,
        Err(e) => return Freshness::Stale(format!("cannot list {}: {e}", dir.display())),
    };
    let mut targets = 0;
    for rel in files {
        let base = rel
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if !(base.starts_with('.') && base.ends_with(".cmd")) || base == STAMP {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(&rel)) else {
            return Freshness::Stale(format!("cannot read {}", rel.display()));
        };
        let record = CmdFile::parse(&text);
        for target in record.targets() {
            targets += 1;
            // Kbuild names targets from make's working directory: the kernel tree when the
            // names are absolute (M= before Linux 6.13), the module directory when relative.
            let cwd = if Path::new(target).is_absolute() {
                &kernel.kdir
            } else {
                dir
            };
            if let Some(why) = record.stale(target, cwd, &mut times) {
                return Freshness::Stale(why);
            }
        }
    }
    if targets == 0 {
        return Freshness::Stale("no Kbuild records (.cmd files)".into());
    }
    Freshness::Current
}

/// The targets a Kbuild `.cmd` record names, each with its prerequisites as this module reads
/// them (`true`: the file counts only when it exists, as in `$(wildcard ...)`).
pub fn record_prerequisites(text: &str) -> Vec<(String, Vec<(String, bool)>)> {
    let record = CmdFile::parse(text);
    let mut targets: Vec<&str> = record.targets().collect();
    targets.sort_unstable();
    targets
        .into_iter()
        .map(|t| {
            let prereqs = record
                .prereqs(t)
                .into_iter()
                .map(|p| match p {
                    Prereq::File(f) => (f, false),
                    Prereq::IfExists(f) => (f, true),
                })
                .collect();
            (t.to_string(), prereqs)
        })
        .collect()
}

/// What the first difference between two stamps means, if they differ.
fn stamp_difference(old: &str, new: &str) -> Option<String> {
    let old_lines: BTreeSet<&str> = old.lines().collect();
    let new_lines: BTreeSet<&str> = new.lines().collect();
    let describe = |line: &str, added: bool| -> String {
        let mut w = line.splitn(3, ' ');
        let kind = w.next().unwrap_or("");
        let what = w.next().unwrap_or("");
        match kind {
            "kdir" | "release" | "arg" | "makeenv" => {
                "the kernel or its make variables changed".into()
            }
            "env" if added => format!("{what} changed in the environment"),
            "env" => format!("{what} is no longer in the environment"),
            "kernel" => format!("the kernel tree's {what} changed"),
            "file" | "made" => format!("{what} changed"),
            "name" if added => format!("{what} is new"),
            "name" => format!("{what} is gone"),
            _ => "the build stamp changed".into(),
        }
    };
    if let Some(l) = new_lines.difference(&old_lines).next() {
        // A changed line shows up as added and removed; the added one names it best, except for
        // a file that is gone.
        let key: String = l.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" ");
        if l.starts_with("file ") && !old_lines.iter().any(|o| o.starts_with(&format!("{key} "))) {
            return Some(describe(&l.replacen("file", "name", 1), true));
        }
        return Some(describe(l, true));
    }
    old_lines
        .difference(&new_lines)
        .next()
        .map(|l| describe(&as_name(l), false))
}

/// A `file` or `made` stamp line as a `name` line: a file that appeared or went away.
fn as_name(line: &str) -> String {
    match line.split_once(' ') {
        Some(("file" | "made", rest)) => format!("name {rest}"),
        _ => line.to_string(),
    }
}

/// Modification times, each file asked once.
#[derive(Default)]
struct Times(HashMap<PathBuf, Option<SystemTime>>);

impl Times {
    fn of(&mut self, p: &Path) -> Option<SystemTime> {
        *self
            .0
            .entry(p.to_path_buf())
            .or_insert_with(|| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    }
}

/// The part of a Kbuild `.cmd` file that matters here: its variables and its rules.
#[derive(Debug, Default)]
struct CmdFile {
    vars: HashMap<String, String>,
    /// `(target, prerequisites)`, unexpanded.
    rules: Vec<(String, String)>,
}

/// A prerequisite: a file that must exist, or one that counts only if it exists
/// (`$(wildcard ...)`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Prereq {
    File(String),
    IfExists(String),
}

impl CmdFile {
    fn parse(text: &str) -> CmdFile {
        let mut record = CmdFile::default();
        let mut logical = String::new();
        for line in text.lines() {
            if let Some(part) = line.strip_suffix('\\') {
                logical.push_str(part);
                logical.push(' ');
                continue;
            }
            logical.push_str(line);
            let l = std::mem::take(&mut logical);
            if let Some((name, value)) = l.split_once(":=") {
                record
                    .vars
                    .insert(name.trim().to_string(), value.trim().to_string());
            } else if let Some((target, prereqs)) = l.split_once(':') {
                let target = target.trim();
                if !target.is_empty() && !target.starts_with('$') && !target.starts_with('#') {
                    record.rules.push((target.to_string(), prereqs.to_string()));
                }
            }
        }
        record
    }

    /// The targets with a recorded command (`savedcmd_T`, or `cmd_T` before Linux 6.2).
    fn targets(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().filter_map(|k| {
            k.strip_prefix("savedcmd_")
                .or_else(|| k.strip_prefix("cmd_"))
                .filter(|t| !t.is_empty())
        })
    }

    /// The prerequisites of `target`: its source, its rules' prerequisites expanded; with
    /// neither (a link, modpost), the existing files its command names; none for a `.mod` list.
    fn prereqs(&self, target: &str) -> Vec<Prereq> {
        let mut out = Vec::new();
        if let Some(src) = self.vars.get(&format!("source_{target}")) {
            out.extend(src.split_whitespace().map(|s| Prereq::File(s.to_string())));
        }
        for (t, p) in &self.rules {
            if t == target {
                self.expand(p, false, &mut out, 0);
            }
        }
        // A `.mod` file lists the module's objects by name: Kbuild remakes it only when that
        // command changes, never because an object is newer.
        if out.is_empty() && !target.ends_with(".mod") {
            let cmd = self
                .vars
                .get(&format!("savedcmd_{target}"))
                .or_else(|| self.vars.get(&format!("cmd_{target}")));
            for word in cmd.into_iter().flat_map(|c| c.split_whitespace()) {
                let word = word.trim_matches(|c| c == '\'' || c == '"' || c == ';');
                if !word.is_empty()
                    && !word.starts_with('-')
                    && !word.contains('$')
                    && word != target
                {
                    out.push(Prereq::IfExists(word.to_string()));
                }
            }
        }
        out
    }

    /// Expands `$(VAR)` and `$(wildcard ...)` in a prerequisite list.
    fn expand(&self, s: &str, optional: bool, out: &mut Vec<Prereq>, depth: usize) {
        let mut rest = s;
        while !rest.is_empty() {
            rest = rest.trim_start();
            if let Some(inner) = rest.strip_prefix("$(") {
                let Some(end) = inner.find(')') else { return };
                let reference = &inner[..end];
                rest = &inner[end + 1..];
                if let Some(files) = reference.strip_prefix("wildcard ") {
                    self.expand(files, true, out, depth);
                } else if let (Some(v), true) = (self.vars.get(reference.trim()), depth < 4) {
                    self.expand(v, optional, out, depth + 1);
                }
                continue;
            }
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            rest = &rest[end..];
            if !word.is_empty() {
                out.push(if optional {
                    Prereq::IfExists(word.to_string())
                } else {
                    Prereq::File(word.to_string())
                });
            }
        }
    }

    /// Why `make` would remake `target`, if it would (leaving the command aside).
    fn stale(&self, target: &str, cwd: &Path, times: &mut Times) -> Option<String> {
        let t_path = cwd.join(target);
        let Some(t_time) = times.of(&t_path) else {
            return Some(format!("{target} is missing"));
        };
        for p in self.prereqs(target) {
            let (name, required) = match &p {
                Prereq::File(n) => (n, true),
                Prereq::IfExists(n) => (n, false),
            };
            let path = cwd.join(name);
            match times.of(&path) {
                None if required => return Some(format!("{name}, needed by {target}, is gone")),
                None => {}
                Some(t) if t > t_time => {
                    return Some(format!("{name} is newer than {target}"));
                }
                Some(_) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: &str = "savedcmd_hello.o := gcc -Wp,-MMD,./.hello.o.d -c -o hello.o hello.c

source_hello.o := hello.c

deps_hello.o := \\
  include/linux/module.h \\
    $(wildcard include/config/MODULES) \\
  hello.h \\

hello.o: $(deps_hello.o)

$(deps_hello.o):

hello.o: $(wildcard ./tools/objtool/objtool)
";

    #[test]
    fn a_record_gives_its_target_and_every_prerequisite() {
        let r = CmdFile::parse(OBJ);
        assert_eq!(r.targets().collect::<Vec<_>>(), ["hello.o"]);
        assert_eq!(
            r.prereqs("hello.o"),
            [
                Prereq::File("hello.c".into()),
                Prereq::File("include/linux/module.h".into()),
                Prereq::IfExists("include/config/MODULES".into()),
                Prereq::File("hello.h".into()),
                Prereq::IfExists("./tools/objtool/objtool".into()),
            ]
        );
        let listed = record_prerequisites(OBJ);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "hello.o");
        assert_eq!(listed[0].1[0], ("hello.c".to_string(), false));
        assert_eq!(listed[0].1[2], ("include/config/MODULES".to_string(), true));
    }

    #[test]
    fn a_link_record_takes_the_files_its_command_names() {
        let r = CmdFile::parse(
            "savedcmd_hello.ko := ld -r -T /k/scripts/module.lds -o hello.ko hello.o hello.mod.o\n",
        );
        let p = r.prereqs("hello.ko");
        assert!(p.contains(&Prereq::IfExists("hello.o".into())));
        assert!(p.contains(&Prereq::IfExists("/k/scripts/module.lds".into())));
        assert!(!p.contains(&Prereq::IfExists("hello.ko".into())));
        assert!(!p
            .iter()
            .any(|p| matches!(p, Prereq::IfExists(w) if w.starts_with('-'))));
    }

    fn kernel(kdir: &Path) -> Kernel {
        Kernel {
            release: "1.0".into(),
            image: kdir.join("bzImage"),
            kdir: kdir.to_path_buf(),
            modules_dir: None,
            make_args: vec![],
            make_env: vec![],
        }
    }

    fn set_time(p: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    /// A module directory as Kbuild leaves it after a build, with times set by hand.
    fn built(tmp: &Path) -> (PathBuf, Kernel) {
        let dir = tmp.join("m");
        let kdir = tmp.join("k");
        std::fs::create_dir_all(kdir.join("include/linux")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(kdir.join("include/linux/module.h"), "").unwrap();
        std::fs::write(kdir.join("Module.symvers"), "").unwrap();
        std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\n").unwrap();
        std::fs::write(dir.join("kmodlab.toml"), "").unwrap();
        std::fs::write(dir.join("hello.c"), "").unwrap();
        std::fs::write(dir.join("hello.h"), "").unwrap();
        let obj = OBJ.replace(
            "include/linux/module.h",
            &kdir.join("include/linux/module.h").display().to_string(),
        );
        std::fs::write(dir.join(".hello.o.cmd"), obj).unwrap();
        std::fs::write(dir.join("hello.o"), "").unwrap();
        std::fs::write(
            dir.join(".hello.ko.cmd"),
            "savedcmd_hello.ko := ld -r -o hello.ko hello.o\n",
        )
        .unwrap();
        std::fs::write(dir.join("hello.ko"), "").unwrap();
        for (f, t) in [
            ("hello.c", 100),
            ("hello.h", 100),
            ("hello.o", 200),
            ("hello.ko", 300),
        ] {
            set_time(&dir.join(f), t);
        }
        set_time(&kdir.join("include/linux/module.h"), 50);
        (dir, kernel(&kdir))
    }

    fn fresh(dir: &Path, k: &Kernel, env: &[(String, String)]) -> Freshness {
        freshness(dir, k, &stamp_text(dir, k, env).unwrap())
    }

    #[test]
    fn decides_as_make_does() {
        let tmp = std::env::temp_dir().join(format!("kmodlab-fresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (dir, k) = built(&tmp);
        let env = vec![("KCFLAGS".to_string(), "-O2".to_string())];
        assert_eq!(
            fresh(&dir, &k, &env),
            Freshness::Stale("no record of a previous build".into())
        );
        record(&dir, &stamp_text(&dir, &k, &env).unwrap()).unwrap();
        assert_eq!(fresh(&dir, &k, &env), Freshness::Current);

        // The spec is not an input of the build.
        std::fs::write(dir.join("kmodlab.toml"), "title = \"x\"").unwrap();
        assert_eq!(fresh(&dir, &k, &env), Freshness::Current);
        // Nor is an unrelated variable.
        let mut other = env.clone();
        other.push(("OLDPWD".into(), "/".into()));
        assert_eq!(fresh(&dir, &k, &other), Freshness::Current);

        let stale = |why: &str| Freshness::Stale(why.to_string());
        set_time(&dir.join("hello.h"), 250);
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("hello.h is newer than hello.o")
        );
        set_time(&dir.join("hello.h"), 100);
        set_time(&dir.join("hello.o"), 400);
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("hello.o is newer than hello.ko")
        );
        set_time(&dir.join("hello.o"), 200);
        set_time(&k.kdir.join("include/linux/module.h"), 500);
        assert_eq!(
            fresh(&dir, &k, &env),
            stale(&format!(
                "{} is newer than hello.o",
                k.kdir.join("include/linux/module.h").display()
            ))
        );
        set_time(&k.kdir.join("include/linux/module.h"), 50);
        // An option file that exists counts; one that does not, does not.
        std::fs::create_dir_all(dir.join("include/config")).unwrap();
        std::fs::write(dir.join("include/config/MODULES"), "").unwrap();
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("include/config/MODULES is new")
        );
        std::fs::remove_dir_all(dir.join("include")).unwrap();
        assert_eq!(fresh(&dir, &k, &env), Freshness::Current);

        let mut changed = env.clone();
        changed[0].1 = "-O0".into();
        assert_eq!(
            fresh(&dir, &k, &changed),
            stale("KCFLAGS changed in the environment")
        );
        assert_eq!(
            fresh(&dir, &k, &[]),
            stale("KCFLAGS is no longer in the environment")
        );
        std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\nccflags-y := -DX\n").unwrap();
        assert_eq!(fresh(&dir, &k, &env), stale("Kbuild changed"));
        std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\n").unwrap();
        record(&dir, &stamp_text(&dir, &k, &env).unwrap()).unwrap();
        assert_eq!(fresh(&dir, &k, &env), Freshness::Current);

        std::fs::write(dir.join("extra.c"), "").unwrap();
        assert_eq!(fresh(&dir, &k, &env), stale("extra.c is new"));
        std::fs::remove_file(dir.join("extra.c")).unwrap();
        std::fs::write(
            k.kdir.join("Module.symvers"),
            "0x1 x vmlinux EXPORT_SYMBOL\n",
        )
        .unwrap();
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("the kernel tree's Module.symvers changed")
        );
        record(&dir, &stamp_text(&dir, &k, &env).unwrap()).unwrap();
        std::fs::remove_file(dir.join("hello.h")).unwrap();
        assert_eq!(fresh(&dir, &k, &env), stale("hello.h is gone"));
        record(&dir, &stamp_text(&dir, &k, &env).unwrap()).unwrap();
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("hello.h, needed by hello.o, is gone")
        );
        forget(&dir);
        assert_eq!(
            fresh(&dir, &k, &env),
            stale("no record of a previous build")
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_stamp_after_make_keeps_the_inputs_of_the_stamp_before() {
        let before = "kdir /k\nfile Kbuild 1.0:10\nmade .a.o.cmd 1.0:5\nname a.c\n";
        let after = "kdir /k\nfile Kbuild 1.0:10\nmade .a.o.cmd 2.0:6\nname a.c\nname a.o\n";
        assert!(same_inputs(before, after));
        let edited = after.replace("Kbuild 1.0:10", "Kbuild 3.0:12");
        assert!(!same_inputs(before, &edited));
    }

    #[test]
    fn environment_filter() {
        assert!(shapes_build("KCFLAGS"));
        assert!(shapes_build("PATH"));
        assert!(!shapes_build("PWD"));
        assert!(!shapes_build("KMODLAB_COLD"));
        assert!(!shapes_build("CARGO_TARGET_DIR"));
        assert!(!shapes_build("weird-name"));
    }

    #[test]
    fn fnv1a_separates_parts() {
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
