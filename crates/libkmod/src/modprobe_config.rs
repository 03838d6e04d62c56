//! modprobe's configuration, as libkmod 30 reads it (`libkmod/libkmod-config.c`):
//!
//! - the files: `modules.softdep` of the modules directory and every `*.conf` / `*.alias` file of
//!   the configuration directories (by default `/etc/modprobe.d`, `/run/modprobe.d`,
//!   `/usr/local/lib/modprobe.d`, `/lib/modprobe.d`), all sorted together by file name, the first
//!   directory winning when two have a file of the same name;
//! - their commands: `alias`, `blacklist`, `options`, `install`, `remove`, `softdep` (`include`
//!   and `config` are reported as deprecated, anything else as a bad line); a backslash at the
//!   end of a line joins the next one;
//! - the kernel command line: `modname.param=value` becomes `options modname param=value`, and
//!   `modprobe.blacklist=a,b` blacklists modules.
//!
//! Parsing takes bytes and returns values and messages; [`list_config_files`] is the only
//! function that touches the file system.

use std::path::{Path, PathBuf};

use kmodlab_cnum::is_space;
use kmodlab_modindex::config::logical_lines;
use kmodlab_modindex::names::alias_normalize;

use crate::tool_log::{site, Site};

/// `alias NAME MODNAME`: `name` is a shell wildcard matched against what modprobe is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The alias (a wildcard pattern), dashes turned into underscores outside brackets.
    pub name: String,
    /// The module it stands for.
    pub modname: String,
}

/// `options MODNAME OPTIONS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModOptions {
    /// The module (or alias) name the options are for.
    pub modname: String,
    /// The options, as written (tabs become spaces; leading blanks after the first are kept).
    pub options: String,
}

/// `install MODNAME COMMAND` or `remove MODNAME COMMAND`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModCommand {
    /// The module name (a shell wildcard).
    pub modname: String,
    /// The shell command.
    pub command: String,
}

/// `softdep MODNAME pre: A B post: C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Softdep {
    /// The module name (a shell wildcard).
    pub name: String,
    /// Modules to load before it.
    pub pre: Vec<String>,
    /// Modules to load after it.
    pub post: Vec<String>,
}

impl Softdep {
    /// The value `modprobe -c` prints: `pre: A Bpost: C` — kmod 30 joins the two lists with
    /// no space between them, and so does this.
    pub fn plain(&self) -> String {
        let mut s = String::new();
        if !self.pre.is_empty() {
            s.push_str("pre: ");
            s.push_str(&self.pre.join(" "));
        }
        if !self.post.is_empty() {
            s.push_str("post: ");
            s.push_str(&self.post.join(" "));
        }
        s
    }
}

/// A problem found while reading the configuration, worded as libkmod words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigMessage {
    /// A line that is not a valid command.
    BadLine {
        /// The file.
        file: String,
        /// Its line number (continuation lines counted).
        line: u32,
        /// The first word of the line.
        command: String,
    },
    /// `include` or `config`.
    Deprecated {
        /// The file.
        file: String,
        /// The command.
        command: String,
    },
    /// A directory inside a configuration directory.
    NestedDirectory {
        /// The configuration directory.
        dir: String,
        /// The entry.
        name: String,
    },
    /// A kernel command line option whose module name has unbalanced brackets.
    BadKernelOption {
        /// The module name as written.
        modname: String,
    },
}

impl ConfigMessage {
    /// Where libkmod prints this message from, and its text.
    pub fn render(&self) -> (Site, String) {
        match self {
            ConfigMessage::BadLine {
                file,
                line,
                command,
            } => (
                site("libkmod-config.c", 712, "kmod_config_parse"),
                format!("{file} line {line}: ignoring bad line starting with '{command}'\n"),
            ),
            ConfigMessage::Deprecated { file, command } => (
                site("libkmod-config.c", 708, "kmod_config_parse"),
                format!("{file}: command {command} is deprecated and not parsed anymore\n"),
            ),
            ConfigMessage::NestedDirectory { dir, name } => (
                site("libkmod-config.c", 772, "conf_files_filter_out"),
                format!("Directories inside directories are not supported: {dir}/{name}\n"),
            ),
            ConfigMessage::BadKernelOption { modname } => (
                site("libkmod-config.c", 489, "kcmdline_parse_result"),
                format!("Ignoring bad option on kernel command line while parsing module name: '{modname}'\n"),
            ),
        }
    }
}

/// Everything modprobe.d and the kernel command line say, each kind in the order read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModprobeConfig {
    /// `blacklist` module names.
    pub blacklists: Vec<String>,
    /// `install` commands.
    pub install_commands: Vec<ModCommand>,
    /// `remove` commands.
    pub remove_commands: Vec<ModCommand>,
    /// `alias` lines.
    pub aliases: Vec<Alias>,
    /// `options` lines, then the kernel command line's options.
    pub options: Vec<ModOptions>,
    /// `softdep` lines.
    pub softdeps: Vec<Softdep>,
}

/// The default configuration directories of kmod 30.
pub const DEFAULT_CONFIG_PATHS: [&str; 4] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
];

/// libkmod's `underscores()` (the same rule as `alias_normalize`): dashes become underscores
/// except inside `[...]`; `None` for an unbalanced `]` or an unterminated `[`.
pub fn underscores(s: &str) -> Option<String> {
    alias_normalize(s.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `strtok_r(NULL, "\t ", &saveptr)` over `line` from `*pos`.
fn next_word<'a>(line: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut i = *pos;
    while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
        i += 1;
    }
    if i >= line.len() {
        *pos = line.len();
        return None;
    }
    let start = i;
    while i < line.len() && line[i] != b' ' && line[i] != b'\t' {
        i += 1;
    }
    // The delimiter that ends the word is consumed too.
    *pos = if i < line.len() { i + 1 } else { i };
    Some(&line[start..i])
}

/// `strtok_r(NULL, "\0", &saveptr)`: the rest of the line, `None` when empty.
fn rest_of_line(line: &[u8], pos: usize) -> Option<&[u8]> {
    let rest = line.get(pos..).unwrap_or(&[]);
    if rest.is_empty() {
        None
    } else {
        Some(rest)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl ModprobeConfig {
    /// Parses one configuration file's contents (`kmod_config_parse`); `filename` is used only
    /// in messages. Lines are appended to what is already there.
    pub fn parse_file(&mut self, bytes: &[u8], filename: &str) -> Vec<ConfigMessage> {
        let mut messages = Vec::new();
        for (line, linenum) in logical_lines(bytes) {
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let mut pos = 0;
            let Some(cmd) = next_word(&line, &mut pos) else {
                continue;
            };
            let cmd = text(cmd);
            let ok = match cmd.as_str() {
                "alias" => {
                    let alias = next_word(&line, &mut pos).map(text);
                    let modname = next_word(&line, &mut pos).map(text);
                    match (
                        alias.as_deref().and_then(underscores),
                        modname.as_deref().and_then(underscores),
                    ) {
                        (Some(name), Some(modname)) => {
                            self.aliases.push(Alias { name, modname });
                            true
                        }
                        _ => false,
                    }
                }
                "blacklist" => match next_word(&line, &mut pos).map(text) {
                    Some(m) => match underscores(&m) {
                        Some(m) => {
                            self.blacklists.push(m);
                            true
                        }
                        None => false,
                    },
                    None => false,
                },
                "options" | "install" | "remove" | "softdep" => {
                    let modname = next_word(&line, &mut pos)
                        .map(text)
                        .and_then(|m| underscores(&m));
                    let rest = rest_of_line(&line, pos).map(text);
                    match (modname, rest) {
                        (Some(modname), Some(rest)) => {
                            match cmd.as_str() {
                                "options" => self.options.push(ModOptions {
                                    modname,
                                    options: rest.replace('\t', " "),
                                }),
                                "install" => self.install_commands.push(ModCommand {
                                    modname,
                                    command: rest,
                                }),
                                "remove" => self.remove_commands.push(ModCommand {
                                    modname,
                                    command: rest,
                                }),
                                _ => self.softdeps.push(parse_softdep(modname, rest.as_bytes())),
                            }
                            true
                        }
                        _ => false,
                    }
                }
                "include" | "config" => {
                    messages.push(ConfigMessage::Deprecated {
                        file: filename.to_string(),
                        command: cmd.clone(),
                    });
                    true
                }
                _ => false,
            };
            if !ok {
                messages.push(ConfigMessage::BadLine {
                    file: filename.to_string(),
                    line: linenum,
                    command: cmd,
                });
            }
        }
        messages
    }

    /// Parses the kernel command line (`/proc/cmdline`, `kmod_config_parse_kcmdline`): every
    /// `modname.param[=value]` adds `options modname param[=value]`; `modprobe.blacklist=a,b`
    /// adds blacklist entries. Quoting follows the kernel's rules, and a bootloader's
    /// `"mod.param=a b"` is turned back into `mod.param="a b"`.
    pub fn parse_kernel_cmdline(&mut self, cmdline: &[u8]) -> Vec<ConfigMessage> {
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum State {
            Ignore,
            Modname,
            Param,
            Value,
            Complete,
        }
        let mut messages = Vec::new();
        // kmod reads at most KCMD_LINE_SIZE - 1 bytes and stops at a NUL.
        let len = cmdline
            .iter()
            .take(4095)
            .position(|&c| c == 0)
            .unwrap_or(cmdline.len().min(4095));
        let mut buf = cmdline[..len].to_vec();
        buf.push(0);

        let mut state = State::Modname;
        let mut quote_start: Option<usize> = None;
        let mut modname = 0usize;
        let mut param: Option<usize> = None;
        let mut value: Option<usize> = None;
        let mut is_quoted = false;
        let mut p = 0usize;
        let mut iter = true;
        while iter {
            match buf[p] {
                b'"' => {
                    is_quoted = !is_quoted;
                    if is_quoted && state == State::Modname && p == modname {
                        quote_start = Some(p);
                        modname = p + 1;
                    } else if state != State::Value {
                        state = State::Ignore;
                    }
                }
                c if c == 0 || is_space(c) => {
                    if c == 0 {
                        iter = false;
                    }
                    if is_quoted && state == State::Value {
                        // Spaces inside a quoted value.
                    } else if is_quoted {
                        state = State::Ignore;
                    } else if state == State::Value || state == State::Param {
                        buf[p] = 0;
                        state = State::Complete;
                    } else {
                        modname = p + 1;
                        state = State::Modname;
                        quote_start = None;
                    }
                }
                b'.' => {
                    if state == State::Modname {
                        buf[p] = 0;
                        param = Some(p + 1);
                        state = State::Param;
                    } else if state == State::Param {
                        state = State::Ignore;
                    }
                }
                b'=' => {
                    if state == State::Param {
                        value = Some(p + 1);
                        state = State::Value;
                    } else if state == State::Modname {
                        state = State::Ignore;
                    }
                }
                _ => {}
            }
            if state == State::Complete {
                if let (Some(q), Some(v), Some(pa)) = (quote_start, value, param) {
                    if q < modname && v >= modname {
                        buf.copy_within(modname..v, q);
                        let v = v - 1;
                        modname -= 1;
                        param = Some(pa - 1);
                        value = Some(v);
                        buf[v] = b'"';
                    }
                }
                if let Some(pa) = param {
                    self.kcmdline_result(&buf, modname, pa, value, &mut messages);
                }
                modname = p + 1;
                state = State::Modname;
                quote_start = None;
            }
            p += 1;
        }
        messages
    }

    fn kcmdline_result(
        &mut self,
        buf: &[u8],
        modname: usize,
        param: usize,
        value: Option<usize>,
        messages: &mut Vec<ConfigMessage>,
    ) {
        let cstr = |at: usize| -> String {
            let end = buf[at..]
                .iter()
                .position(|&c| c == 0)
                .map_or(buf.len(), |e| at + e);
            text(&buf[at..end])
        };
        let name = cstr(modname);
        let param_s = cstr(param);
        if name == "modprobe" && param_s.starts_with("blacklist=") {
            let list = value.map(cstr).unwrap_or_default();
            for t in list.split(',') {
                self.blacklists.push(t.to_string());
            }
        } else {
            match underscores(&name) {
                Some(m) => self.options.push(ModOptions {
                    modname: m,
                    options: param_s.replace('\t', " "),
                }),
                None => messages.push(ConfigMessage::BadKernelOption { modname: name }),
            }
        }
    }

    /// The configuration part of `modprobe -c`: blacklist, install, remove, alias, options and
    /// softdep lines, each kind in the order read.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for b in &self.blacklists {
            s.push_str(&format!("blacklist {b}\n"));
        }
        for c in &self.install_commands {
            s.push_str(&format!("install {} {}\n", c.modname, c.command));
        }
        for c in &self.remove_commands {
            s.push_str(&format!("remove {} {}\n", c.modname, c.command));
        }
        for a in &self.aliases {
            s.push_str(&format!("alias {} {}\n", a.name, a.modname));
        }
        for o in &self.options {
            s.push_str(&format!("options {} {}\n", o.modname, o.options));
        }
        for d in &self.softdeps {
            s.push_str(&format!("softdep {} {}\n", d.name, d.plain()));
        }
        s
    }
}

/// `kmod_config_add_softdep`: words separated by blanks; `pre:` and `post:` switch lists; words
/// before either are ignored. As in kmod, exactly one leading blank sticks to the first word
/// (so `softdep m  pre: a` ignores its `pre:`).
fn parse_softdep(name: String, line: &[u8]) -> Softdep {
    #[derive(PartialEq)]
    enum Mode {
        None,
        Pre,
        Post,
    }
    let mut dep = Softdep {
        name,
        pre: Vec::new(),
        post: Vec::new(),
    };
    let mut mode = Mode::None;
    let mut was_space = false;
    let mut p = 0usize;
    let mut s = 0usize;
    loop {
        let at_end = s >= line.len();
        if !at_end {
            let c = line[s];
            if !is_space(c) {
                was_space = false;
                s += 1;
                continue;
            }
            if was_space {
                p = s + 1;
                s += 1;
                continue;
            }
            was_space = true;
            if p >= s {
                s += 1;
                continue;
            }
        }
        let word = &line[p.min(s)..s];
        if word == b"pre:" {
            mode = Mode::Pre;
        } else if word == b"post:" {
            mode = Mode::Post;
        } else if !at_end || !was_space {
            match mode {
                Mode::Pre => dep.pre.push(text(word)),
                Mode::Post => dep.post.push(text(word)),
                Mode::None => {}
            }
        }
        p = s + 1;
        if at_end {
            break;
        }
        s += 1;
    }
    dep
}

/// The configuration files to read, in order (`conf_files_list` for each path): the modules
/// directory's `modules.softdep`, then the `*.conf` and `*.alias` files of `config_paths`
/// (directories, or single files), all sorted by file name; when two paths hold files of the
/// same name, the first one wins.
pub fn list_config_files(
    dirname: &Path,
    config_paths: &[PathBuf],
) -> (Vec<PathBuf>, Vec<ConfigMessage>) {
    let mut messages = Vec::new();
    // (name, full path), kept sorted by name.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut insert = |name: String, path: PathBuf| {
        let pos = files.partition_point(|(n, _)| n.as_bytes() < name.as_bytes());
        if files.get(pos).is_some_and(|(n, _)| *n == name) {
            return;
        }
        files.insert(pos, (name, path));
    };
    insert("modules.softdep".into(), dirname.join("modules.softdep"));
    for path in config_paths {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if !meta.is_dir() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            insert(name, path.clone());
            continue;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || name.len() < 6
                || !(name.ends_with(".conf") || name.ends_with(".alias"))
            {
                continue;
            }
            if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
                messages.push(ConfigMessage::NestedDirectory {
                    dir: path.display().to_string(),
                    name,
                });
                continue;
            }
            let full = PathBuf::from(format!("{}/{}", path.display(), name));
            insert(name, full);
        }
    }
    (files.into_iter().map(|(_, p)| p).collect(), messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (ModprobeConfig, Vec<ConfigMessage>) {
        let mut c = ModprobeConfig::default();
        let m = c.parse_file(s.as_bytes(), "t.conf");
        (c, m)
    }

    #[test]
    fn commands_and_bad_lines() {
        let (c, m) = parse(
            "foo bar\n  # indented\noptions\noptions x\nalias a]b c\ninclude /x\n\
             softdep m pre: a b post: c\nsoftdep n\t pre:  post: \n\
             options  dummy   a=1\tb=2  \ninstall m echo hi $CMDLINE_OPTS\\\n more\n\
             blacklist foo-bar\nalias pci:v*d* foo-bar\n# comment\n\n",
        );
        assert_eq!(
            c.dump(),
            "blacklist foo_bar\ninstall m echo hi $CMDLINE_OPTS more\n\
             alias pci:v*d* foo_bar\noptions dummy   a=1 b=2  \n\
             softdep m pre: a bpost: c\nsoftdep n \n"
        );
        let rendered: Vec<String> = m.iter().map(|m| m.render().1).collect();
        assert_eq!(
            rendered,
            [
                "t.conf line 1: ignoring bad line starting with 'foo'\n",
                "t.conf line 2: ignoring bad line starting with '#'\n",
                "t.conf line 3: ignoring bad line starting with 'options'\n",
                "t.conf line 4: ignoring bad line starting with 'options'\n",
                "t.conf line 5: ignoring bad line starting with 'alias'\n",
                "t.conf: command include is deprecated and not parsed anymore\n",
            ]
        );
    }

    #[test]
    fn continuation_lines_count_in_line_numbers() {
        let (_, m) = parse("install a b\\\nc\nbad\n");
        assert_eq!(
            m,
            [ConfigMessage::BadLine {
                file: "t.conf".into(),
                line: 3,
                command: "bad".into()
            }]
        );
    }

    #[test]
    fn underscores_spare_brackets() {
        assert_eq!(
            underscores("snd-hda[-x]-y").as_deref(),
            Some("snd_hda[-x]_y")
        );
        assert_eq!(underscores("a]"), None);
        assert_eq!(underscores("a[b"), None);
    }

    #[test]
    fn softdep_words() {
        let d = parse_softdep("m".into(), b"pre: a  b\tpost: c ");
        assert_eq!(d.pre, ["a", "b"]);
        assert_eq!(d.post, ["c"]);
        let d = parse_softdep("m".into(), b" pre: a post: c");
        assert!(d.pre.is_empty());
        assert_eq!(d.post, ["c"]);
        let d = parse_softdep("m".into(), b"gcm");
        assert_eq!(d.plain(), "");
    }

    #[test]
    fn kernel_command_line() {
        let mut c = ModprobeConfig::default();
        let m = c.parse_kernel_cmdline(
            b"BOOT_IMAGE=/vmlinuz root=/dev/sda1 snd-hda-intel.model=auto random.trust_cpu=1 \
              modprobe.blacklist=a,b-c \"parport.dyndbg=file x.c +p\" q.\"x\"=1 0.0.0.0:22 \
              a.b.c=1 loop.max_part\n",
        );
        assert!(m.is_empty());
        assert_eq!(
            c.dump(),
            "blacklist a\nblacklist b-c\noptions snd_hda_intel model=auto\n\
             options random trust_cpu=1\noptions parport dyndbg=\"file x.c +p\"\n\
             options loop max_part\n"
        );
        let mut c = ModprobeConfig::default();
        let m = c.parse_kernel_cmdline(b"a]b.c=1");
        assert_eq!(
            m,
            [ConfigMessage::BadKernelOption {
                modname: "a]b".into()
            }]
        );
    }

    #[test]
    fn files_sorted_by_name_first_directory_wins() {
        let tmp = std::env::temp_dir().join(format!("kmodlab-cfg-{}", std::process::id()));
        let (a, b) = (tmp.join("a"), tmp.join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(a.join("z.conf"), "").unwrap();
        std::fs::write(b.join("z.conf"), "").unwrap();
        std::fs::write(b.join("m.alias"), "").unwrap();
        std::fs::write(b.join("x.txt"), "").unwrap();
        std::fs::write(b.join(".h.conf"), "").unwrap();
        std::fs::create_dir_all(b.join("d.conf")).unwrap();
        let (files, msgs) = list_config_files(Path::new("/lm"), &[a.clone(), b.clone()]);
        assert_eq!(
            files,
            [
                b.join("m.alias"),
                PathBuf::from("/lm/modules.softdep"),
                a.join("z.conf")
            ]
        );
        assert_eq!(msgs.len(), 1);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
