//! `modinfo`, as kmod 30 has it (Debian bookworm's `30+20221128`): the same options, output,
//! messages and exit codes, byte for byte.
//!
//! Each argument is a module file (an existing regular file whose name ends in `.ko`,
//! `.ko.xz`, `.ko.zst` or `.ko.gz`) or else a module name or alias, looked up in the indexes
//! of `/lib/modules/$(uname -r)` (or `-b DIR`/`-k VERSION`) as libkmod looks it up. For each
//! module it prints `filename:` (`name:` and `filename: (builtin)` for a built-in module), the
//! `.modinfo` entries in order, the appended signature, and the parameters merged from `parm`
//! and `parmtype`; `-F FIELD` prints only the values of one key, `-0` ends records with NUL.
//!
//! Where this differs from Debian's kmod: gzip-compressed modules are read (kmod is built
//! there without zlib, so it treats `.ko.gz` as an unknown name; kmod built with zlib reads
//! them, as here) and `-V` says `+ZLIB`; a module whose section name table index is 0 or out
//! of range gets `Invalid argument`, where kmod aborts on an assertion.

use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::getopt::{long, Getopt, HasArg, LongOpt};
use crate::kernel_state::Kernel;
use crate::kmod_context::{Context, ModId, PATH_MAX};
use crate::tool_log::{prio, strerror, Log};
use kmodlab_modfile::kmod_elf::KmodElf;
use kmodlab_modfile::kmod_file::{read_image, Compressions};
use libc::ENOENT;

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "adlpn0mF:k:b:Vh";

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("author", HasArg::No, b'a' as u32),
    long("description", HasArg::No, b'd' as u32),
    long("license", HasArg::No, b'l' as u32),
    long("parameters", HasArg::No, b'p' as u32),
    long("filename", HasArg::No, b'n' as u32),
    long("null", HasArg::No, b'0' as u32),
    long("modname", HasArg::No, b'm' as u32),
    long("field", HasArg::Required, b'F' as u32),
    long("set-version", HasArg::Required, b'k' as u32),
    long("basedir", HasArg::Required, b'b' as u32),
    long("version", HasArg::No, b'V' as u32),
    long("help", HasArg::No, b'h' as u32),
];

/// Runs `modinfo` with `args` (`args[0]` is the name it was invoked as) on the process's
/// stdout and stderr; returns the exit code.
///
/// Standard output is buffered the way C's stdio buffers it (by lines on a terminal, else in
/// blocks of the file's preferred size), so that output and error messages interleave as
/// kmod's do when both go to the same place.
pub fn main(args: Vec<OsString>) -> i32 {
    let stdout = io::stdout();
    let mode = if stdout.is_terminal() {
        Buffering::Line
    } else {
        Buffering::Block(stdio_block_size(&stdout))
    };
    // Write to the file descriptor itself: Rust's own stdout buffer flushes at every newline.
    match stdout.as_fd().try_clone_to_owned() {
        Ok(fd) => run_buffered(&args, StdioBuffer::new(std::fs::File::from(fd), mode)),
        Err(_) => run_buffered(&args, StdioBuffer::new(stdout.lock(), mode)),
    }
}

fn run_buffered<W: Write>(args: &[OsString], mut out: StdioBuffer<W>) -> i32 {
    let code = run(args, &Kernel::host(), &mut out, &mut io::stderr().lock());
    let _ = out.flush();
    code
}

/// Runs `modinfo` with `args` (`args[0]` is the name it was invoked as), writing what it
/// prints to `out` and its messages to `err`; returns the exit code (0, or 1 when an option or
/// any module failed). Reads the environment variables kmod reads: `POSIXLY_CORRECT`,
/// `KMOD_LOG` and `PWD`.
pub fn run(args: &[OsString], kernel: &Kernel, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let program = args.first().map_or(&b"modinfo"[..], |a| a.as_bytes());
    let short_name = program
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(program, |slash| &program[slash + 1..]);
    let mut tool = Tool {
        short_name,
        log: Log::new(&String::from_utf8_lossy(short_name)),
        field: None,
        separator: b'\n',
        out,
    };
    let mut arg_is_modname = false;
    let mut kversion: Option<Vec<u8>> = None;
    let mut root: Option<Vec<u8>> = None;
    let mut getopt = Getopt::new(args, SHORT_OPTIONS, LONG_OPTIONS);
    for opt in getopt.by_ref() {
        let Ok(opt) = opt.map_err(|e| e.report(err)) else {
            return 1;
        };
        let arg = opt.arg_bytes().to_vec();
        match u8::try_from(opt.val).unwrap_or(0) {
            b'a' => tool.field = Some(b"author".to_vec()),
            b'd' => tool.field = Some(b"description".to_vec()),
            b'l' => tool.field = Some(b"license".to_vec()),
            b'p' => tool.field = Some(b"parm".to_vec()),
            b'n' => tool.field = Some(b"filename".to_vec()),
            b'0' => tool.separator = 0,
            b'm' => arg_is_modname = true,
            b'F' => tool.field = Some(arg),
            b'k' => kversion = Some(arg),
            b'b' => root = Some(arg),
            b'h' => {
                tool.help();
                return 0;
            }
            b'V' => {
                tool.print(crate::tool_log::VERSION_TEXT.as_bytes());
                return 0;
            }
            c => {
                let message = format!("unexpected getopt_long() value '{}'.\n", c as char);
                tool.error(err, message);
                return 1;
            }
        }
    }
    let operands = getopt.operands();
    if operands.is_empty() {
        tool.error(err, "missing module or filename.\n");
        return 1;
    }

    // The module directory: `/lib/modules/$(uname -r)`, or `DIR/lib/modules/VERSION` with -b
    // or -k (in kmod's fixed-size buffer).
    let release = || kernel.release().map(String::into_bytes).unwrap_or_default();
    let dirname = if root.is_some() || kversion.is_some() {
        let mut dir = root.unwrap_or_default();
        dir.extend_from_slice(b"/lib/modules/");
        dir.extend_from_slice(&kversion.unwrap_or_else(release));
        dir.truncate(PATH_MAX - 1);
        dir
    } else {
        [&b"/lib/modules/"[..], &release()].concat()
    };
    // A context with no configuration files, as kmod's modinfo makes it.
    let mut ctx = Context::new(Some(&dirname), Some(&[]), kernel, tool.log.clone(), err);

    let mut failed = false;
    for name in operands {
        let name = name.as_bytes();
        ctx.release_modules();
        let result = if arg_is_modname {
            tool.name_do(&mut ctx, name)
        } else if is_module_filename(name) {
            tool.path_do(&mut ctx, name)
        } else {
            tool.alias_do(&mut ctx, name)
        };
        failed |= result.is_err();
    }
    i32::from(failed)
}

/// An existing regular file (symbolic links followed) with a module file name ending.
fn is_module_filename(name: &[u8]) -> bool {
    let is_file = std::fs::metadata(OsStr::from_bytes(name)).is_ok_and(|m| m.is_file());
    is_file && kmodlab_modindex::names::has_module_extension(name)
}

/// The output settings and the output stream (messages go to the context's).
struct Tool<'a> {
    short_name: &'a [u8],
    log: Log,
    field: Option<Vec<u8>>,
    separator: u8,
    out: &'a mut dyn Write,
}

/// One `key=value` entry of a module's information.
type Entry = (Vec<u8>, Vec<u8>);

/// A module parameter, merged from its `parm` and `parmtype` entries.
struct Param<'a> {
    name: &'a [u8],
    description: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
}

/// What C's `%s` prints of a string: up to its first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |end| &bytes[..end])
}

/// Bytes as kmod shows a key identifier or signature: `01:AB:...`, 20 bytes a line, the next
/// lines indented by two tabs.
fn hex_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3 + bytes.len() / 20 * 3);
    for (i, b) in bytes.iter().enumerate() {
        out.extend_from_slice(format!("{b:02X}").as_bytes());
        if i + 1 < bytes.len() {
            out.push(b':');
            if (i + 1) % 20 == 0 {
                out.extend_from_slice(b"\n\t\t");
            }
        }
    }
    out
}

impl Tool<'_> {
    fn print(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
    }

    /// kmod's `ERR()`: `modinfo: ERROR: ...` on stderr.
    fn error(&self, err: &mut dyn Write, message: impl AsRef<[u8]>) {
        self.log.print(err, prio::ERR, message);
    }

    /// `printf("%-16s%s%c", label, value, separator)`.
    fn labelled(&mut self, label: &[u8], value: &[u8]) {
        let mut line = label.to_vec();
        line.resize(label.len().max(16), b' ');
        line.extend_from_slice(c_str(value));
        line.push(self.separator);
        self.print(&line);
    }

    /// `printf("%s%c", value, separator)`.
    fn value(&mut self, value: &[u8]) {
        let mut line = c_str(value).to_vec();
        line.push(self.separator);
        self.print(&line);
    }

    fn help(&mut self) {
        const OPTIONS: &str = " [options] <modulename|filename> [args]\n\
            Options:\n\
            \t-a, --author                Print only 'author'\n\
            \t-d, --description           Print only 'description'\n\
            \t-l, --license               Print only 'license'\n\
            \t-p, --parameters            Print only 'parm'\n\
            \t-n, --filename              Print only 'filename'\n\
            \t-0, --null                  Use \\0 instead of \\n\n\
            \t-m, --modname               Handle argument as module name instead of alias or filename\n\
            \t-F, --field=FIELD           Print only provided FIELD\n\
            \t-k, --set-version=VERSION   Use VERSION instead of `uname -r`\n\
            \t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules\n\
            \t-V, --version               Show version\n\
            \t-h, --help                  Show this help\n";
        let text = [b"Usage:\n\t", self.short_name, OPTIONS.as_bytes()].concat();
        self.print(&text);
    }

    fn path_do(&mut self, ctx: &mut Context, path: &[u8]) -> Result<(), i32> {
        match ctx.new_from_path(path) {
            Ok(module) => self.modinfo_do(ctx, module),
            Err(errno) => {
                self.error(ctx.err, [b"Module file ", path, b" not found.\n"].concat());
                Err(-errno)
            }
        }
    }

    fn name_do(&mut self, ctx: &mut Context, name: &[u8]) -> Result<(), i32> {
        match ctx.lookup_name(name) {
            Some(module) => self.modinfo_do(ctx, module),
            None => {
                self.error(ctx.err, [b"Module name ", name, b" not found.\n"].concat());
                Err(ENOENT)
            }
        }
    }

    fn alias_do(&mut self, ctx: &mut Context, alias: &[u8]) -> Result<(), i32> {
        let modules = match ctx.lookup(alias) {
            Ok(modules) => modules,
            Err(errno) => {
                self.error(
                    ctx.err,
                    [b"Module alias ", alias, b" not found.\n"].concat(),
                );
                return Err(-errno);
            }
        };
        if modules.is_empty() {
            self.error(ctx.err, [b"Module ", alias, b" not found.\n"].concat());
            return Err(ENOENT);
        }
        let mut result = Ok(());
        for module in modules {
            if let Err(errno) = self.modinfo_do(ctx, module) {
                result = Err(errno);
            }
        }
        result
    }

    /// Prints one module.
    fn modinfo_do(&mut self, ctx: &mut Context, module: ModId) -> Result<(), i32> {
        let name = ctx.name_bytes(module).to_vec();
        let path = ctx.path(module);
        let builtin = path.is_none();
        let field = self.field.clone();
        if builtin {
            match field.as_deref() {
                None => self.labelled(b"name:", &name),
                Some(b"name") => self.value(&name),
                Some(_) => {}
            }
        }
        let filename = path.unwrap_or_else(|| b"(builtin)".to_vec());
        match field.as_deref() {
            Some(b"filename") => {
                self.value(&filename);
                return Ok(());
            }
            None => self.labelled(b"filename:", &filename),
            Some(_) => {}
        }
        let entries = match module_info(ctx, module) {
            Ok(entries) => entries,
            // An old kernel with no modules.builtin.modinfo: nothing more to say.
            Err(errno) if builtin && errno == ENOENT => return Ok(()),
            Err(errno) => {
                let message = strerror(errno);
                let parts = [
                    b"could not get modinfo from '",
                    &name[..],
                    b"': ",
                    message.as_bytes(),
                    b"\n",
                ];
                self.error(ctx.err, parts.concat());
                return Err(errno);
            }
        };
        match field.as_deref() {
            Some(b"parm") => {
                let params = self.params(ctx.err, &entries);
                self.print_params(&params, false);
            }
            Some(field) => {
                for (key, value) in &entries {
                    if key == field {
                        self.value(value);
                    }
                }
            }
            None => {
                for (key, value) in &entries {
                    if key == b"parm" || key == b"parmtype" {
                        continue;
                    }
                    if self.separator == 0 {
                        self.print(&[key.as_slice(), b"=", c_str(value), b"\0"].concat());
                        continue;
                    }
                    // printf("%s:%-*s%s%c", key, 15 - strlen(key), "", value, sep): a negative
                    // width pads too.
                    let key = c_str(key);
                    let pad = 15usize.abs_diff(key.len());
                    let mut line = key.to_vec();
                    line.push(b':');
                    line.resize(line.len() + pad, b' ');
                    line.extend_from_slice(c_str(value));
                    line.push(self.separator);
                    self.print(&line);
                }
                let params = self.params(ctx.err, &entries);
                self.print_params(&params, true);
            }
        }
        Ok(())
    }

    /// The parameters from the `parm` and `parmtype` entries, in kmod's order: last seen
    /// first. Entries without a `:` are reported and skipped.
    fn params<'e>(&mut self, err: &mut dyn Write, entries: &'e [Entry]) -> Vec<Param<'e>> {
        let mut params: Vec<Param<'e>> = Vec::new();
        for (key, value) in entries {
            let is_description = key == b"parm";
            if !is_description && key != b"parmtype" {
                continue;
            }
            let value = c_str(value);
            let Some(colon) = value.iter().position(|&b| b == b':') else {
                let parts = [
                    b"Found invalid \"",
                    &key[..],
                    b"=",
                    value,
                    b"\": missing ':'\n",
                ];
                self.error(err, parts.concat());
                continue;
            };
            let (name, text) = (&value[..colon], &value[colon + 1..]);
            let at = match params.iter().position(|p| p.name == name) {
                Some(at) => at,
                None => {
                    params.push(Param {
                        name,
                        description: None,
                        kind: None,
                    });
                    params.len() - 1
                }
            };
            if is_description {
                params[at].description = Some(text);
            } else {
                params[at].kind = Some(text);
            }
        }
        params.reverse();
        params
    }

    fn print_params(&mut self, params: &[Param<'_>], labelled: bool) {
        for p in params {
            let mut line = Vec::new();
            if labelled {
                line.extend_from_slice(b"parm:           ");
            }
            line.extend_from_slice(p.name);
            match (p.description, p.kind) {
                (None, Some(kind)) if labelled => {
                    line.push(b':');
                    line.extend_from_slice(kind);
                }
                (None, kind) => {
                    line.extend_from_slice(b": (");
                    line.extend_from_slice(kind.unwrap_or_default());
                    line.push(b')');
                }
                (Some(description), Some(kind)) => {
                    line.push(b':');
                    line.extend_from_slice(description);
                    line.extend_from_slice(b" (");
                    line.extend_from_slice(kind);
                    line.push(b')');
                }
                (Some(description), None) => {
                    line.push(b':');
                    line.extend_from_slice(description);
                }
            }
            line.push(self.separator);
            self.print(&line);
        }
    }
}

/// A module's information (`kmod_module_get_info()`): the `.modinfo` entries of its file and
/// its signature, or a built-in module's entries from `modules.builtin.modinfo`.
fn module_info(ctx: &mut Context, module: ModId) -> Result<Vec<Entry>, i32> {
    if ctx.is_builtin(module) {
        let name = ctx.name_bytes(module).to_vec();
        let strings = ctx.builtin_modinfo(&name)?;
        return Ok(strings.iter().map(|s| split_entry(s)).collect());
    }
    let path = ctx.path(module).ok_or(ENOENT)?;
    let image = read_image(Path::new(OsStr::from_bytes(&path)), Compressions::ALL)?;
    let elf = KmodElf::new(&image[..])?;
    let mut entries: Vec<Entry> = elf
        .strings(b".modinfo")?
        .into_iter()
        .map(split_entry)
        .collect();
    if let Ok(Some(sig)) = kmodlab_modfile::parse_signature(&image) {
        // kmod shows no signature when it does not know the digest algorithm.
        if let Some(hash) = sig.hash_algo {
            entries.push((b"sig_id".to_vec(), sig.key_id_type.as_str().into()));
            entries.push((b"signer".to_vec(), sig.signer.to_vec()));
            entries.push((b"sig_key".to_vec(), hex_lines(&sig.key_id)));
            entries.push((b"sig_hashalgo".to_vec(), hash.as_str().into()));
            entries.push((b"signature".to_vec(), hex_lines(&sig.signature)));
        }
    }
    Ok(entries)
}

/// `key=value` split at the first `=`; a string without one is a key with an empty value.
fn split_entry(s: &[u8]) -> Entry {
    match s.iter().position(|&b| b == b'=') {
        Some(eq) => (s[..eq].to_vec(), s[eq + 1..].to_vec()),
        None => (s.to_vec(), Vec::new()),
    }
}

/// How stdout is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buffering {
    /// Flushed at each newline (a terminal).
    Line,
    /// Written in whole blocks of this size (a pipe or file).
    Block(usize),
}

/// The buffer size glibc gives a stream: the file's preferred block size when it is smaller
/// than `BUFSIZ` (8192), else `BUFSIZ`.
fn stdio_block_size(stdout: &io::Stdout) -> usize {
    const BUFSIZ: usize = 8192;
    let block = stdout
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| std::fs::File::from(fd).metadata().ok())
        .map_or(0, |m| usize::try_from(m.blksize()).unwrap_or(0));
    if block > 0 && block < BUFSIZ {
        block
    } else {
        BUFSIZ
    }
}

/// A writer that passes bytes on at the points where glibc's stdio would: in whole blocks,
/// or up to the last newline for a line-buffered stream.
struct StdioBuffer<W: Write> {
    inner: W,
    mode: Buffering,
    buffer: Vec<u8>,
}

impl<W: Write> StdioBuffer<W> {
    fn new(inner: W, mode: Buffering) -> StdioBuffer<W> {
        StdioBuffer {
            inner,
            mode,
            buffer: Vec::new(),
        }
    }
}

impl<W: Write> Write for StdioBuffer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        let ready = match self.mode {
            Buffering::Line => self
                .buffer
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |nl| nl + 1),
            Buffering::Block(size) => self.buffer.len() / size * size,
        };
        if ready > 0 {
            self.inner.write_all(&self.buffer[..ready])?;
            self.buffer.drain(..ready);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buffer)?;
        self.buffer.clear();
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_like_kmod() {
        assert_eq!(hex_lines(b""), b"");
        assert_eq!(hex_lines(&[0xab, 0x12]), b"AB:12");
        let twenty: Vec<u8> = (0..20).collect();
        assert!(!hex_lines(&twenty).contains(&b'\n'));
        let long: Vec<u8> = (0..41).collect();
        let text = String::from_utf8(hex_lines(&long)).unwrap();
        let lines: Vec<&str> = text.split("\n\t\t").collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("13:"));
        assert_eq!(lines[2], "28");
    }

    #[test]
    fn stdio_buffer_writes_whole_blocks_or_lines() {
        let mut block = StdioBuffer::new(Vec::new(), Buffering::Block(4));
        block.write_all(b"abc").unwrap();
        assert!(block.inner.is_empty());
        block.write_all(b"defghij").unwrap();
        assert_eq!(block.inner, b"abcdefgh");
        block.flush().unwrap();
        assert_eq!(block.inner, b"abcdefghij");
        let mut line = StdioBuffer::new(Vec::new(), Buffering::Line);
        line.write_all(b"one\ntw").unwrap();
        assert_eq!(line.inner, b"one\n");
        line.flush().unwrap();
        assert_eq!(line.inner, b"one\ntw");
    }
}
