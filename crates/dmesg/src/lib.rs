//! `dmesg` as util-linux's dmesg has it, byte for byte: the same options, filters, timestamp
//! formats, colors, JSON and error messages. Records come from `/dev/kmsg` (falling back to
//! syslog(2)), from `--file` (syslog format) or from `--kmsg-file` (NUL-separated /dev/kmsg
//! records), read by `kmodlab-kmsg`, the parser the guest agent uses too.
//!
//! Unprintable characters are escaped as util-linux decides it: in a UTF-8 locale a valid
//! character passes through when the C library's `iswprint` or `iswspace` accepts it (so an
//! unassigned code point such as U+0378 comes out as `\xcd\xb8`), anything else above ASCII
//! is escaped byte by byte.
//!
//! Differences, on purpose: `DMESG_TEST_BOOTIME` is always honoured (util-linux only in its test
//! build); `--human` never starts a pager; the color scheme is always the default one; a locale
//! that is not UTF-8 counts as C (util-linux would pass what such a locale, ISO-8859-1 or
//! EUC-JP, calls printable).
#![deny(missing_docs)]

pub mod clock;
pub mod names;
pub mod print;

use kmodlab_getopt::{long, short_name, Getopt, HasArg, LongOpt};
use kmodlab_kmsg::{parse_record, syslog_records};
use kmodlab_sys::{KmsgDevice, KmsgStart, SyslogAction};
use names::{Kind, NameError};
use print::{Filter, Printer, Record, Style, TimeFormat};
use std::ffi::OsString;
use std::io::{self, Write};

/// What dmesg was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    ReadAll,
    ReadClear,
    Clear,
    ConsoleOff,
    ConsoleOn,
    ConsoleLevel(i32),
}

/// Where the records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `/dev/kmsg`, or a file of its records.
    Kmsg,
    /// syslog(2).
    Syslog,
    /// A syslog-format file.
    File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColorMode {
    Undef,
    Auto,
    Never,
    Always,
}

/// Everything the command line decided.
struct Control {
    action: Action,
    method: Method,
    filename: Option<String>,
    bufsize: Option<usize>,
    follow: bool,
    end: bool,
    raw: bool,
    noescape: bool,
    decode: bool,
    json: bool,
    force_prefix: bool,
    color: ColorMode,
    time_formats: Vec<TimeFormat>,
    levels: Option<[bool; 8]>,
    facilities: Option<[bool; 25]>,
    since: Option<u64>,
    until: Option<u64>,
    caller_id_width: usize,
}

/// How the process should end: a message for stderr (already formatted) and a status.
struct Exit {
    message: Vec<u8>,
    code: i32,
}

fn fail(prog: &str, msg: impl std::fmt::Display) -> Exit {
    Exit {
        message: format!("{prog}: {msg}\n").into_bytes(),
        code: 1,
    }
}

/// `before` (a message, or nothing), then util-linux's hint.
fn try_help(prog: &str, before: &[u8]) -> Exit {
    let hint = format!("Try '{prog} --help' for more information.\n");
    Exit {
        message: [before, hint.as_bytes()].concat(),
        code: 1,
    }
}

/// The util-linux release whose dmesg this one follows (options, messages, time formats).
pub const UTIL_LINUX_VERSION: &str = "2.42";

/// Width of the caller id field for syslog-format records: util-linux takes the length of
/// `SHRT_MAX` as the preprocessor spells it (`0x7fff`).
const SYSLOG_CALLER_WIDTH: usize = 6;

const OPT_TIME_FORMAT: u32 = 0x80;
const OPT_NOESC: u32 = 0x81;
const OPT_SINCE: u32 = 0x82;
const OPT_UNTIL: u32 = 0x83;

/// The long options.
pub const LONG_OPTIONS: &[LongOpt] = &[
    long("buffer-size", HasArg::Required, 's' as u32),
    long("clear", HasArg::No, 'C' as u32),
    long("color", HasArg::Optional, 'L' as u32),
    long("console-level", HasArg::Required, 'n' as u32),
    long("console-off", HasArg::No, 'D' as u32),
    long("console-on", HasArg::No, 'E' as u32),
    long("decode", HasArg::No, 'x' as u32),
    long("file", HasArg::Required, 'F' as u32),
    long("facility", HasArg::Required, 'f' as u32),
    long("follow", HasArg::No, 'w' as u32),
    long("follow-new", HasArg::No, 'W' as u32),
    long("human", HasArg::No, 'H' as u32),
    long("help", HasArg::No, 'h' as u32),
    long("json", HasArg::No, 'J' as u32),
    long("kernel", HasArg::No, 'k' as u32),
    long("kmsg-file", HasArg::Required, 'K' as u32),
    long("level", HasArg::Required, 'l' as u32),
    long("since", HasArg::Required, OPT_SINCE),
    long("syslog", HasArg::No, 'S' as u32),
    long("raw", HasArg::No, 'r' as u32),
    long("read-clear", HasArg::No, 'c' as u32),
    long("reltime", HasArg::No, 'e' as u32),
    long("show-delta", HasArg::No, 'd' as u32),
    long("ctime", HasArg::No, 'T' as u32),
    long("noescape", HasArg::No, OPT_NOESC),
    long("notime", HasArg::No, 't' as u32),
    long("nopager", HasArg::No, 'P' as u32),
    long("until", HasArg::Required, OPT_UNTIL),
    long("userspace", HasArg::No, 'u' as u32),
    long("version", HasArg::No, 'V' as u32),
    long("time-format", HasArg::Required, OPT_TIME_FORMAT),
    long("force-prefix", HasArg::No, 'p' as u32),
];

/// The short options, as `getopt_long` takes them.
pub const SHORT_OPTIONS: &str = "CcDdEeF:f:HhJK:kL::l:n:iPprSs:TtuVWwx";

/// Options that cannot be combined, group by group.
const EXCLUSIVE: &[&[u8]] = &[
    b"CDEcnr", b"FK", b"Hr", b"Lr", b"Sw", b"Tr", b"dr", b"er", b"rx", b"rt",
];

/// The process environment dmesg reads (a value so tests can pass their own).
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `DMESG_TEST_BOOTIME`.
    pub test_boot_time: Option<String>,
    /// Whether the locale is UTF-8 (`LC_ALL`, `LC_CTYPE`, `LANG`). [`Env::current`] also makes
    /// it the process's `LC_CTYPE`, whose classes then decide which characters are printable.
    pub utf8: bool,
    /// `NO_COLOR` is set.
    pub no_color: bool,
    /// stdout is a terminal able to show colors.
    pub color_terminal: bool,
    /// The contents of `/proc/sys/kernel/pid_max`, if readable.
    pub pid_max: Option<Vec<u8>>,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

impl Env {
    /// The environment of this process.
    pub fn current() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(1) } == 1;
        Env {
            test_boot_time: var("DMESG_TEST_BOOTIME"),
            utf8: utf8_locale(),
            no_color: std::env::var_os("NO_COLOR").is_some(),
            color_terminal: tty && var("TERM").is_some_and(|t| t != "dumb"),
            pid_max: std::fs::read("/proc/sys/kernel/pid_max").ok(),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        }
    }

    /// Width of the caller id field for /dev/kmsg records: the characters of the largest pid, as
    /// util-linux counts them from `pid_max` (its newline included).
    fn kmsg_caller_width(&self) -> usize {
        match &self.pid_max {
            Some(b) => b[..b.len().min(20)].iter().take_while(|&&c| c != 0).count(),
            None => 11,
        }
    }
}

/// Whether the locale the environment names (for character types) exists and is UTF-8, as the C
/// library decides it. It stays the process's `LC_CTYPE`: `iswprint` reads its classes.
fn utf8_locale() -> bool {
    // SAFETY: setlocale and nl_langinfo are called before any other thread uses the locale; the
    // returned string is copied at once.
    unsafe {
        if libc::setlocale(libc::LC_CTYPE, c"".as_ptr()).is_null() {
            return false;
        }
        let codeset = libc::nl_langinfo(libc::CODESET);
        !codeset.is_null() && std::ffi::CStr::from_ptr(codeset).to_bytes() == b"UTF-8"
    }
}

/// Runs dmesg with `argv` (argv[0] names the program in messages); returns the exit status.
pub fn main(argv: Vec<OsString>) -> i32 {
    let env = Env::current();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let code = match run(&argv, &env, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = out.flush();
            let _ = io::stderr().write_all(&e.message);
            e.code
        }
    };
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let prog = argv0_short(&argv);
            let _ = writeln!(io::stderr(), "{prog}: write error: {e}");
            1
        }
        _ => code,
    }
}

fn argv0_short(argv: &[OsString]) -> String {
    let a0 = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dmesg".into());
    short_name(&a0).to_string()
}

/// Parses the command line and does what it says, printing to `out`.
fn run(argv: &[OsString], env: &Env, out: &mut dyn Write) -> Result<(), Exit> {
    let prog = argv0_short(argv);
    let mut getopt = Getopt::new(argv, SHORT_OPTIONS, LONG_OPTIONS);
    let mut ctl = Control {
        action: Action::ReadAll,
        method: Method::Kmsg,
        filename: None,
        bufsize: None,
        follow: false,
        end: false,
        raw: false,
        noescape: false,
        decode: false,
        json: false,
        force_prefix: false,
        color: ColorMode::Undef,
        time_formats: Vec::new(),
        levels: None,
        facilities: None,
        since: None,
        until: None,
        caller_id_width: 0,
    };
    let mut excl_seen = [0u32; 10];
    let name_error = |kind: Kind, e: NameError| match e {
        NameError::Unknown(s) => fail(&prog, format!("unknown {} '{s}'", kind.word())),
        NameError::Range(s) => fail(
            &prog,
            format!(
                "failed to parse {} '{s}': {}",
                kind.word(),
                kmodlab_sys::strerror(libc::ERANGE)
            ),
        ),
        NameError::Empty => Exit {
            message: Vec::new(),
            code: 1,
        },
    };
    for p in getopt.by_ref() {
        let p = p.map_err(|e| try_help(&prog, e.message()))?;
        // dmesg's internals work on text: arguments are converted here.
        let c = p.val;
        let arg = p.arg.map(|a| a.to_string_lossy().into_owned());
        exclusive(&prog, c, &mut excl_seen)?;
        let ch = char::from_u32(c).unwrap_or('\0');
        let optional = arg.clone();
        let arg = arg.unwrap_or_default();
        match (ch, c) {
            ('C', _) => ctl.action = Action::Clear,
            ('c', _) => ctl.action = Action::ReadClear,
            ('D', _) => ctl.action = Action::ConsoleOff,
            ('E', _) => ctl.action = Action::ConsoleOn,
            ('d', _) => include_format(&mut ctl.time_formats, TimeFormat::TimeDelta),
            ('e', _) => include_format(&mut ctl.time_formats, TimeFormat::Reltime),
            ('F', _) => {
                ctl.filename = Some(arg);
                ctl.method = Method::File;
                ctl.caller_id_width = SYSLOG_CALLER_WIDTH;
            }
            ('K', _) => {
                ctl.filename = Some(arg);
                ctl.method = Method::Kmsg;
                ctl.caller_id_width = env.kmsg_caller_width();
            }
            ('f', _) => {
                let bits = ctl.facilities.get_or_insert([false; 25]);
                names::parse_list(Kind::Facility, &arg, bits)
                    .map_err(|e| name_error(Kind::Facility, e))?;
            }
            ('H', _) => {
                include_format(&mut ctl.time_formats, TimeFormat::Reltime);
                ctl.color = ColorMode::Auto;
            }
            ('J', _) => ctl.json = true,
            ('k', _) => ctl.facilities.get_or_insert([false; 25])[0] = true,
            ('L', _) => {
                ctl.color = ColorMode::Auto;
                if let Some(arg) = optional {
                    let mode = arg.strip_prefix('=').unwrap_or(&arg);
                    ctl.color = match mode.to_ascii_lowercase().as_str() {
                        "auto" => ColorMode::Auto,
                        "never" => ColorMode::Never,
                        "always" => ColorMode::Always,
                        _ => return Err(fail(&prog, format!("unsupported color mode: {mode}"))),
                    };
                }
            }
            ('l', _) => {
                let bits = ctl.levels.get_or_insert([false; 8]);
                names::parse_list(Kind::Level, &arg, bits)
                    .map_err(|e| name_error(Kind::Level, e))?;
            }
            ('n', _) => {
                let level = names::parse_name(Kind::Level, &arg, 0)
                    .map_err(|e| name_error(Kind::Level, e))?;
                ctl.action = Action::ConsoleLevel(level as i32);
            }
            ('P', _) => {}
            ('p', _) => ctl.force_prefix = true,
            ('r', _) => ctl.raw = true,
            ('S', _) => ctl.method = Method::Syslog,
            ('s', _) => {
                let n = parse_u32(&arg)
                    .ok_or_else(|| fail(&prog, format!("invalid buffer size argument: '{arg}'")))?;
                ctl.bufsize = Some((n as usize).max(4096));
            }
            ('T', _) => include_format(&mut ctl.time_formats, TimeFormat::Ctime),
            ('t', _) => include_format(&mut ctl.time_formats, TimeFormat::None),
            ('u', _) => {
                let bits = ctl.facilities.get_or_insert([false; 25]);
                bits[1..24].iter_mut().for_each(|b| *b = true);
            }
            ('w', _) => ctl.follow = true,
            ('W', _) => {
                ctl.follow = true;
                ctl.end = true;
            }
            ('x', _) => ctl.decode = true,
            (_, OPT_TIME_FORMAT) => {
                let f = match arg.as_str() {
                    "notime" => TimeFormat::None,
                    "ctime" => TimeFormat::Ctime,
                    "delta" => TimeFormat::Delta,
                    "reltime" => TimeFormat::Reltime,
                    "iso" => TimeFormat::Iso,
                    "raw" => TimeFormat::Time,
                    _ => return Err(fail(&prog, format!("unknown time format: {arg}"))),
                };
                include_format(&mut ctl.time_formats, f);
            }
            (_, OPT_NOESC) => ctl.noescape = true,
            (_, OPT_SINCE) | (_, OPT_UNTIL) => {
                let t = clock::parse_timestamp(&arg, env.now)
                    .ok_or_else(|| fail(&prog, format!("invalid time value \"{arg}\"")))?;
                if c == OPT_SINCE {
                    ctl.since = Some(t);
                } else {
                    ctl.until = Some(t);
                }
            }
            ('h', _) => {
                let _ = out.write_all(usage(&prog).as_bytes());
                return Ok(());
            }
            ('V', _) => {
                let _ = writeln!(
                    out,
                    "{prog} from kmodlab {} (util-linux {UTIL_LINUX_VERSION} compatible)",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(());
            }
            _ => return Err(try_help(&prog, b"")),
        }
    }
    if !getopt.operands().is_empty() {
        return Err(try_help(&prog, format!("{prog}: bad usage\n").as_bytes()));
    }
    if ctl.json {
        ctl.time_formats.clear();
        ctl.force_prefix = false;
        ctl.raw = false;
        ctl.noescape = true;
    }
    resolve_formats(&mut ctl.time_formats);
    let has = |f: TimeFormat| is_format(&ctl.time_formats, f);
    let mut boot_usec = 0;
    if has(TimeFormat::Reltime)
        || has(TimeFormat::Ctime)
        || has(TimeFormat::CtimeDelta)
        || has(TimeFormat::Iso)
        || ctl.since.is_some()
        || ctl.until.is_some()
    {
        match clock::boot_time(env.test_boot_time.as_deref()) {
            Some((boot, suspended)) => boot_usec = boot + suspended,
            None => {
                let _ = writeln!(
                    io::stderr(),
                    "{prog}: failed to determine boot time, timestamps will be inaccurate"
                );
            }
        }
    }
    let color = !ctl.json
        && match ctl.color {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => env.color_terminal,
            ColorMode::Undef => !env.no_color && env.color_terminal,
        };
    let style = Style {
        time_formats: ctl.time_formats.clone(),
        raw: ctl.raw,
        noescape: ctl.noescape,
        decode: ctl.decode,
        color,
        json: ctl.json,
        force_prefix: ctl.force_prefix,
        follow: ctl.follow,
        caller_id_width: ctl.caller_id_width,
        boot_usec,
        utf8: env.utf8,
    };
    let filter = Filter {
        levels: ctl.levels,
        facilities: ctl.facilities,
        since: ctl.since,
        until: ctl.until,
    };
    let io_err = |e: io::Error| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Exit {
                message: Vec::new(),
                code: 0,
            }
        } else {
            fail(&prog, format!("write failed: {e}"))
        }
    };
    match ctl.action {
        Action::ReadAll | Action::ReadClear => {
            read_and_print(&prog, &mut ctl, env, style, filter, out, io_err)?;
            if ctl.action == Action::ReadClear {
                clear(&prog)?;
            }
        }
        Action::Clear => clear(&prog)?,
        Action::ConsoleOff | Action::ConsoleOn | Action::ConsoleLevel(_) => {
            let (action, level) = match ctl.action {
                Action::ConsoleOff => (SyslogAction::ConsoleOff, 0),
                Action::ConsoleOn => (SyslogAction::ConsoleOn, 0),
                Action::ConsoleLevel(l) => (SyslogAction::ConsoleLevel, l),
                _ => unreachable!("console actions only"),
            };
            kmodlab_sys::klogctl(action, None, level)
                .map_err(|e| fail(&prog, format!("klogctl failed: {}", errstr(&e))))?;
        }
    }
    Ok(())
}

fn errstr(e: &io::Error) -> String {
    kmodlab_sys::strerror(e.raw_os_error().unwrap_or(0))
}

fn clear(prog: &str) -> Result<(), Exit> {
    kmodlab_sys::klogctl(SyslogAction::Clear, None, 0)
        .map(|_| ())
        .map_err(|e| fail(prog, format!("clear kernel buffer failed: {}", errstr(&e))))
}

fn read_and_print(
    prog: &str,
    ctl: &mut Control,
    env: &Env,
    mut style: Style,
    filter: Filter,
    out: &mut dyn Write,
    io_err: impl Fn(io::Error) -> Exit,
) -> Result<(), Exit> {
    // /dev/kmsg unless it cannot be read (then syslog(2), as on kernels before 3.5).
    let mut device = None;
    let mut first = Vec::new();
    if ctl.method == Method::Kmsg && ctl.filename.is_none() {
        let start = if ctl.end {
            KmsgStart::End
        } else {
            KmsgStart::AfterClear
        };
        let mut buf = vec![0u8; kmodlab_sys::KMSG_RECORD_MAX];
        match KmsgDevice::open(ctl.follow, start)
            .and_then(|mut d| d.read_record(&mut buf).map(|n| (d, n)))
        {
            Ok((d, n)) => {
                first = buf[..n.unwrap_or(0)].to_vec();
                device = Some(d);
            }
            Err(_) => ctl.method = Method::Syslog,
        }
    }
    let filtering = ctl.levels.is_some() || ctl.facilities.is_some();
    if ctl.raw && ctl.method != Method::Kmsg && filtering {
        return Err(fail(
            prog,
            "--raw can be used together with --level or --facility only when reading messages from /dev/kmsg",
        ));
    }
    if ctl.force_prefix && ctl.method != Method::Kmsg {
        return Err(fail(prog, "only kmsg supports multi-line messages"));
    }
    let buffer = match (ctl.method, &ctl.filename) {
        (Method::Syslog, _) => {
            style.caller_id_width = SYSLOG_CALLER_WIDTH;
            let action = if ctl.action == Action::ReadClear {
                SyslogAction::ReadClear
            } else {
                SyslogAction::ReadAll
            };
            kmodlab_sys::read_syslog_buffer(action, ctl.bufsize)
                .map_err(|e| fail(prog, format!("read kernel buffer failed: {}", errstr(&e))))?
        }
        (_, Some(file)) => read_file(prog, file)?,
        (_, None) => first,
    };
    if buffer.is_empty() {
        return Ok(());
    }
    if device.is_some() {
        style.caller_id_width = env.kmsg_caller_width();
    }
    let raw = style.raw;
    let mut printer = Printer::new(out, style, filter);
    match (ctl.method, device) {
        (Method::Kmsg, Some(mut dev)) => {
            let mut buf = vec![0u8; kmodlab_sys::KMSG_RECORD_MAX];
            let mut record = buffer;
            loop {
                if let Some(r) = parse_record(&record) {
                    printer.print(&kmsg_view(&r)).map_err(&io_err)?;
                }
                match dev.read_record(&mut buf) {
                    Ok(Some(n)) => record = buf[..n].to_vec(),
                    _ => break,
                }
            }
        }
        (Method::Kmsg, None) => {
            let mut rest = &buffer[..];
            while !rest.is_empty() {
                let len = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                if len >= 2049 {
                    // As util-linux: what was printed stays, a JSON document stays open.
                    return Err(fail(prog, "record too large"));
                }
                if let Some(r) = parse_record(&rest[..len]) {
                    printer.print(&kmsg_view(&r)).map_err(&io_err)?;
                }
                rest = &rest[(len + 1).min(rest.len())..];
            }
        }
        _ if raw => {
            let piece = if ctl.method == Method::File {
                // SAFETY: sysconf only reads a system value.
                usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
            } else {
                buffer.len()
            };
            printer.raw(&buffer, piece).map_err(&io_err)?;
        }
        _ => {
            for r in syslog_records(&buffer) {
                let view = Record {
                    level: r.level,
                    facility: r.facility,
                    time: r.time,
                    caller: r.caller.as_deref(),
                    message: r.message,
                    next_byte: r.next_byte,
                };
                printer.print(&view).map_err(&io_err)?;
            }
        }
    }
    printer.finish().map_err(&io_err)
}

/// The contents of a `--file` or `--kmsg-file`. util-linux maps the whole file (the size
/// `fstat` gives) with mmap(2), so what the kernel refuses to map fails as there: an empty file,
/// a pipe or a device with `cannot mmap: FILE: Invalid argument`, a directory with `No such
/// device`. The same mapping is made here, only to learn whether the kernel allows it; the bytes
/// are then read, at most that size.
fn read_file(prog: &str, file: &str) -> Result<Vec<u8>, Exit> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(file)
        .map_err(|e| fail(prog, format!("cannot open {file}: {}", errstr(&e))))?;
    let size = f
        .metadata()
        .map_err(|e| fail(prog, format!("stat of {file} failed: {}", errstr(&e))))?
        .len();
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    // SAFETY: a new read-only mapping of an open file, unmapped at once and never read.
    let mapped = unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        if map == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            libc::munmap(map, len);
            Ok(())
        }
    };
    mapped.map_err(|e| fail(prog, format!("cannot mmap: {file}: {}", errstr(&e))))?;
    let mut data = Vec::new();
    let _ = data.try_reserve_exact(len);
    f.take(size)
        .read_to_end(&mut data)
        .map_err(|e| fail(prog, format!("read failed: {file}: {}", errstr(&e))))?;
    Ok(data)
}

fn kmsg_view(r: &kmodlab_kmsg::KmsgRecord) -> Record<'_> {
    Record {
        level: r.level,
        facility: r.facility,
        time: r.time,
        caller: r.caller.as_deref(),
        message: &r.message,
        next_byte: 0,
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    let t = s.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn exclusive(prog: &str, c: u32, seen: &mut [u32; 10]) -> Result<(), Exit> {
    for (g, group) in EXCLUSIVE.iter().enumerate() {
        if !group.iter().any(|&x| u32::from(x) == c) {
            continue;
        }
        if seen[g] == 0 {
            seen[g] = c;
        } else if seen[g] != c {
            let name = |v: u32| {
                LONG_OPTIONS
                    .iter()
                    .find(|o| o.val == v)
                    .map(|o| format!("--{}", o.name))
                    .unwrap_or_else(|| format!("-{}", char::from_u32(v).unwrap_or('?')))
            };
            return Err(fail(
                prog,
                format!(
                    "options {} and {} cannot be combined",
                    name(seen[g]),
                    name(c)
                ),
            ));
        }
    }
    Ok(())
}

fn is_format(list: &[TimeFormat], f: TimeFormat) -> bool {
    if list.is_empty() {
        f == TimeFormat::Time
    } else {
        list.contains(&f)
    }
}

fn include_format(list: &mut Vec<TimeFormat>, f: TimeFormat) {
    if !list.is_empty() && list.contains(&f) {
        return;
    }
    if list.len() < 8 {
        list.push(f);
    }
}

fn exclude_format(list: &mut Vec<TimeFormat>, f: TimeFormat) {
    if let Some(i) = list.iter().position(|&x| x == f) {
        list.remove(i);
    }
}

fn replace_format(list: &mut [TimeFormat], old: TimeFormat, new: TimeFormat) {
    if let Some(x) = list.iter_mut().find(|x| **x == old) {
        *x = new;
    }
}

/// Combines the formats given: `notime` with a delta keeps the delta only, `notime` alone
/// removes all; a delta merges into `raw` or `ctime` when both are asked for.
fn resolve_formats(list: &mut Vec<TimeFormat>) {
    use TimeFormat::*;
    if is_format(list, None) {
        let delta = is_format(list, TimeDelta) || is_format(list, Delta);
        list.clear();
        list.push(if delta { Delta } else { None });
    }
    if is_format(list, TimeDelta) && is_format(list, Ctime) {
        exclude_format(list, TimeDelta);
        replace_format(list, Ctime, CtimeDelta);
    }
    if is_format(list, Delta) {
        if is_format(list, Time) {
            exclude_format(list, Delta);
            replace_format(list, Time, TimeDelta);
        } else if is_format(list, Ctime) {
            exclude_format(list, Delta);
            replace_format(list, Ctime, CtimeDelta);
        }
    }
}

fn usage(prog: &str) -> String {
    let mut s = format!(
        "\nUsage:\n {prog} [options]\n\nDisplay or control the kernel ring buffer.\n\nOptions:\n"
    );
    s.push_str(concat!(
        " -C, --clear                 clear the kernel ring buffer\n",
        " -c, --read-clear            read and clear all messages\n",
        " -D, --console-off           disable printing messages to console\n",
        " -E, --console-on            enable printing messages to console\n",
        " -F, --file <file>           use the file instead of the kernel log buffer\n",
        " -K, --kmsg-file <file>      use the file in kmsg format\n",
        " -f, --facility <list>       restrict output to defined facilities\n",
        " -H, --human                 human readable output\n",
        " -J, --json                  use JSON output format\n",
        " -k, --kernel                display kernel messages\n",
        " -L, --color[=<when>]        colorize messages (auto, always or never)\n",
        "                               colors are enabled by default\n",
        " -l, --level <list>          restrict output to defined levels\n",
        " -n, --console-level <level> set level of messages printed to console\n",
        " -P, --nopager               do not pipe output into a pager\n",
        " -p, --force-prefix          force timestamp output on each line of multi-line messages\n",
        " -r, --raw                   print the raw message buffer\n",
        "     --noescape              don't escape unprintable character\n",
        " -S, --syslog                force to use syslog(2) rather than /dev/kmsg\n",
        " -s, --buffer-size <size>    buffer size to query the kernel ring buffer\n",
        " -u, --userspace             display userspace messages\n",
        " -w, --follow                wait for new messages\n",
        " -W, --follow-new            wait and print only new messages\n",
        " -x, --decode                decode facility and level to readable string\n",
        " -d, --show-delta            show time delta between printed messages\n",
        " -e, --reltime               show local time and time delta in readable format\n",
        " -T, --ctime                 show human-readable timestamp (may be inaccurate!)\n",
        " -t, --notime                don't show any timestamp with messages\n",
        "     --time-format <format>  show timestamp using the given format:\n",
        "                               [delta|reltime|ctime|notime|iso|raw]\n",
        "Suspending/resume will make ctime and iso timestamps inaccurate.\n",
        "     --since <time>          display the lines since the specified time\n",
        "     --until <time>          display the lines until the specified time\n",
        "\n",
        " -h, --help                  display this help\n",
        " -V, --version               display version\n",
        "\nSupported log facilities:\n",
    ));
    for (n, h) in names::FACILITIES {
        s.push_str(&format!(" {n:>7} - {h}\n"));
    }
    s.push_str("\nSupported log levels (priorities):\n");
    for (n, h) in names::LEVELS {
        s.push_str(&format!(" {n:>7} - {h}\n"));
    }
    s.push_str(
        "\nIn kmodlab's VM: `kmodlab exec -- dmesg -x` shows the guest's log; \
         `kmodlab dmesg --kmsg-file FILE` reads a saved one.\n\nFor more details see dmesg(1).\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `dmesg ARGS` prints on stdout, and its error message and status when it fails.
    fn dmesg(args: &[&str]) -> (String, Option<(String, i32)>) {
        let argv: Vec<OsString> = std::iter::once("dmesg")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let mut out = Vec::new();
        let result = run(&argv, &Env::default(), &mut out);
        let error = result
            .err()
            .map(|e| (String::from_utf8(e.message).unwrap(), e.code));
        (String::from_utf8(out).unwrap(), error)
    }

    fn failure(message: String) -> Option<(String, i32)> {
        Some((message, 1))
    }

    #[test]
    fn a_file_is_read_as_util_linux_maps_it() {
        let log = std::env::temp_dir().join(format!("kmodlab-dmesg-{}.log", std::process::id()));
        std::fs::write(&log, "<6>[    1.000000] hello\n").unwrap();
        let (out, err) = dmesg(&["--file", log.to_str().unwrap()]);
        std::fs::remove_file(&log).unwrap();
        assert_eq!((out.as_str(), err), ("[    1.000000] hello\n", None));
        // An empty file (or a device) cannot be mapped.
        for opt in ["--file", "--kmsg-file"] {
            assert_eq!(
                dmesg(&[opt, "/dev/null"]),
                (
                    String::new(),
                    failure("dmesg: cannot mmap: /dev/null: Invalid argument\n".into())
                )
            );
        }
        let missing = "/nonexistent/kmodlab-dmesg.log";
        assert_eq!(
            dmesg(&["-F", missing]).1,
            failure(format!(
                "dmesg: cannot open {missing}: No such file or directory\n"
            ))
        );
    }

    #[test]
    fn a_directory_cannot_be_mapped() {
        // util-linux opens it, and mmap(2) refuses a directory: `dmesg --file /tmp` says
        // `dmesg: cannot mmap: /tmp: No such device` and exits with 1.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        for opt in ["--file", "--kmsg-file"] {
            assert_eq!(
                dmesg(&[opt, dir]),
                (
                    String::new(),
                    failure(format!("dmesg: cannot mmap: {dir}: No such device\n"))
                )
            );
        }
    }

    #[test]
    fn version_names_the_util_linux_release_followed() {
        assert_eq!(
            dmesg(&["--version"]),
            (
                format!(
                    "dmesg from kmodlab {} (util-linux 2.42 compatible)\n",
                    env!("CARGO_PKG_VERSION")
                ),
                None
            )
        );
        // 2.42's wording of conflicting options, and -d with -e as 2.42 accepts it.
        assert_eq!(
            dmesg(&["-r", "-x"]).1,
            failure("dmesg: options --raw and --decode cannot be combined\n".into())
        );
        let mut formats = Vec::new();
        include_format(&mut formats, TimeFormat::TimeDelta);
        include_format(&mut formats, TimeFormat::Reltime);
        resolve_formats(&mut formats);
        assert_eq!(formats, [TimeFormat::TimeDelta, TimeFormat::Reltime]);
    }
}
