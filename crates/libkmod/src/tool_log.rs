//! Messages as kmod's tools print them (`tools/log.c`) and as libkmod prints them through them.
//!
//! A tool message is `NAME: PRIORITY: text` (`modprobe: ERROR: ...`, `modprobe: FATAL: ...`).
//! A libkmod message routed through the tool's log function carries the source location the
//! Debian build of kmod 30 prints (it is built with debug information in its messages):
//! `modprobe: ERROR: ../libkmod/libkmod-module.c:856 kmod_module_remove_module() text`.
//! Before a tool installs its log function (insmod never does), libkmod prints with its own:
//! `libkmod: ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: text`.

use std::io::Write;

/// What `-V` / `--version` prints in every tool: kmod's version and the features of kmod 30 that
/// behaves as these tools do. `+ZSTD +XZ +ZLIB`: modules compressed with zstd, xz and gzip are
/// read (Debian's kmod lacks zlib and says `-ZLIB`); `+LIBCRYPTO`: modinfo shows a PKCS#7
/// signature's signer, key and hash as kmod built with OpenSSL does; no signature is verified
/// (kmod verifies none either).
pub const VERSION_TEXT: &str = "kmod version 30\n+ZSTD +XZ +ZLIB +LIBCRYPTO -EXPERIMENTAL\n";

/// `-V`: prints [`VERSION_TEXT`] on `out`; the tool's exit status (0).
pub fn print_version(out: &mut dyn Write) -> i32 {
    let _ = out.write_all(VERSION_TEXT.as_bytes());
    0
}

/// syslog priorities, as kmod uses them.
pub mod prio {
    /// `LOG_EMERG`.
    pub const EMERG: i32 = 0;
    /// `LOG_CRIT`: printed as FATAL, and the tool exits.
    pub const CRIT: i32 = 2;
    /// `LOG_ERR`.
    pub const ERR: i32 = 3;
    /// `LOG_WARNING`.
    pub const WARNING: i32 = 4;
    /// `LOG_NOTICE`.
    pub const NOTICE: i32 = 5;
    /// `LOG_INFO`.
    pub const INFO: i32 = 6;
    /// `LOG_DEBUG`.
    pub const DEBUG: i32 = 7;
}

fn prio_name(p: i32) -> String {
    match p {
        prio::CRIT => "FATAL".into(),
        prio::ERR => "ERROR".into(),
        prio::WARNING => "WARNING".into(),
        prio::NOTICE => "NOTICE".into(),
        prio::INFO => "INFO".into(),
        prio::DEBUG => "DEBUG".into(),
        p => format!("LOG-{p:03}"),
    }
}

fn libkmod_prio_name(p: i32) -> String {
    match p {
        prio::EMERG => "EMERGENCY".into(),
        1 => "ALERT".into(),
        prio::CRIT => "CRITICAL".into(),
        prio::ERR => "ERROR".into(),
        prio::WARNING => "WARNING".into(),
        prio::NOTICE => "NOTICE".into(),
        prio::INFO => "INFO".into(),
        prio::DEBUG => "DEBUG".into(),
        p => format!("L:{p}"),
    }
}

/// Where a libkmod message comes from: file (under `libkmod/`), line and function, as kmod 30
/// has them.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    /// Source file, e.g. `libkmod-module.c`.
    pub file: &'static str,
    /// Line in kmod 30.
    pub line: u32,
    /// Function name.
    pub func: &'static str,
}

/// Shorthand for a [`Site`].
pub const fn site(file: &'static str, line: u32, func: &'static str) -> Site {
    Site { file, line, func }
}

/// The log of one tool run: its name, the priority threshold and whether the tool's log function
/// is installed in libkmod yet.
#[derive(Clone, Debug)]
pub struct Log {
    /// `program_invocation_short_name`.
    pub name: String,
    /// Messages with a priority above this are dropped (`log_priority` in `tools/log.c`).
    pub priority: i32,
    /// libkmod's own threshold (`kmod_get_log_priority`): `LOG_ERR` unless changed.
    pub libkmod_priority: i32,
    /// Whether libkmod messages go through the tool's format (after `log_setup_kmod_log`).
    pub routed: bool,
}

impl Log {
    /// A tool log before setup: tool messages up to WARNING, libkmod's own log up to ERR
    /// (or as `KMOD_LOG` says).
    pub fn new(name: &str) -> Log {
        let libkmod_priority = std::env::var_os("KMOD_LOG")
            .map(|v| parse_log_priority(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str())))
            .unwrap_or(prio::ERR);
        Log {
            name: name.to_string(),
            priority: prio::WARNING,
            libkmod_priority,
            routed: false,
        }
    }

    /// `log_setup_kmod_log`: the tool's threshold becomes `priority` for both its own and
    /// libkmod's messages, which now go through the tool's format.
    pub fn setup_kmod_log(&mut self, priority: i32) {
        self.priority = priority;
        self.libkmod_priority = priority;
        self.routed = true;
    }

    /// `log_printf`: prints a tool message if its priority passes. Returns true when the message
    /// was printed at CRIT or worse, which means the tool must exit with status 1 now.
    pub fn print(&self, err: &mut dyn Write, p: i32, msg: impl AsRef<[u8]>) -> bool {
        if p > self.priority {
            return false;
        }
        let prefix = format!("{}: {}: ", self.name, prio_name(p));
        let _ = err.write_all(&[prefix.as_bytes(), msg.as_ref()].concat());
        p <= prio::CRIT
    }

    /// A libkmod message (`ERR(ctx, ...)`, `INFO(ctx, ...)`).
    pub fn libkmod(&self, err: &mut dyn Write, p: i32, site: Site, msg: impl AsRef<[u8]>) {
        if p > self.libkmod_priority {
            return;
        }
        let prefix = if self.routed {
            format!(
                "{}: {}: ../libkmod/{}:{} {}() ",
                self.name,
                prio_name(p),
                site.file,
                site.line,
                site.func
            )
        } else {
            format!(
                "libkmod: {} ../libkmod/{}:{} {}: ",
                libkmod_prio_name(p),
                site.file,
                site.line,
                site.func
            )
        };
        let _ = err.write_all(&[prefix.as_bytes(), msg.as_ref()].concat());
    }
}

/// libkmod's reading of `KMOD_LOG` (`strtol`, then names): a number followed by nothing or
/// a space, or a name starting with `err`, `info` or `debug`; anything else is 0. The number
/// is read as `strtol` reads it (C-locale white space first; out of range, `LONG_MIN` or
/// `LONG_MAX`) and kept in an `int`, cut to 32 bits, as libkmod keeps it.
fn parse_log_priority(value: &[u8]) -> i32 {
    let number = kmodlab_cnum::scan(value, 0);
    if value
        .get(number.end)
        .is_none_or(|&c| kmodlab_cnum::is_space(c))
    {
        let long = match number.magnitude {
            Some(m) if number.negative => 0i64.checked_sub_unsigned(m).unwrap_or(i64::MIN),
            Some(m) => i64::try_from(m).unwrap_or(i64::MAX),
            None if number.negative => i64::MIN,
            None => i64::MAX,
        };
        return long as i32;
    }
    if value.starts_with(b"err") {
        prio::ERR
    } else if value.starts_with(b"info") {
        prio::INFO
    } else if value.starts_with(b"debug") {
        prio::DEBUG
    } else {
        0
    }
}

/// `parse_log_priority` for the `tool_args` fuzz target: libkmod's threshold for a
/// `KMOD_LOG` value.
#[doc(hidden)]
pub fn fuzz_log_priority(value: &[u8]) -> i32 {
    parse_log_priority(value)
}

/// The C library's text for an errno value, as `strerror` and `%m` give it.
pub use kmodlab_sys::strerror;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_and_libkmod_formats() {
        let mut log = Log::new("rmmod");
        log.libkmod_priority = prio::ERR;
        let mut err = Vec::new();
        assert!(!log.print(&mut err, prio::ERR, "missing module name.\n"));
        log.libkmod(
            &mut err,
            prio::ERR,
            site("libkmod-config.c", 712, "kmod_config_parse"),
            "x\n",
        );
        log.setup_kmod_log(prio::ERR);
        log.libkmod(
            &mut err,
            prio::ERR,
            site("libkmod-module.c", 856, "kmod_module_remove_module"),
            "y\n",
        );
        log.libkmod(
            &mut err,
            prio::INFO,
            site("libkmod-module.c", 949, "kmod_module_insert_module"),
            "dropped\n",
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "rmmod: ERROR: missing module name.\n\
             libkmod: ERROR ../libkmod/libkmod-config.c:712 kmod_config_parse: x\n\
             rmmod: ERROR: ../libkmod/libkmod-module.c:856 kmod_module_remove_module() y\n"
        );
    }

    #[test]
    fn fatal_means_exit_unless_quiet() {
        let mut log = Log::new("modprobe");
        let mut err = Vec::new();
        assert!(log.print(&mut err, prio::CRIT, "gone\n"));
        log.setup_kmod_log(prio::EMERG);
        assert!(!log.print(&mut err, prio::CRIT, "quiet\n"));
        assert_eq!(String::from_utf8(err).unwrap(), "modprobe: FATAL: gone\n");
    }

    #[test]
    fn kmod_log_values() {
        assert_eq!(parse_log_priority(b"7"), 7);
        assert_eq!(parse_log_priority(b"3"), 3);
        assert_eq!(parse_log_priority(b"0"), 0);
        assert_eq!(parse_log_priority(b"debug"), prio::DEBUG);
        assert_eq!(parse_log_priority(b"info"), prio::INFO);
        assert_eq!(parse_log_priority(b"errors"), prio::ERR);
        assert_eq!(parse_log_priority(b"x"), 0);
        assert_eq!(parse_log_priority(b"nonsense"), 0);
    }

    /// Found by the `tool_args` fuzz target: a `KMOD_LOG` number too large for a `long` read
    /// as 0, where libkmod's `strtol` gives `LONG_MAX`, which its `int` holds as -1. Also
    /// white space as C's `isspace` has it: a vertical tab ends a number, a Unicode space
    /// does not come before one.
    #[test]
    fn kmod_log_number_out_of_range_is_strtol_cut_to_int() {
        assert_eq!(parse_log_priority(&[b'5'; 67]), -1);
        assert_eq!(parse_log_priority(&[b"-", &[b'9'; 30][..]].concat()), 0);
        assert_eq!(parse_log_priority(b"2147483648"), i32::MIN);
        assert_eq!(parse_log_priority(b"4294967303"), 7);
        assert_eq!(parse_log_priority(b" \x0b+7\x0b"), 7);
        assert_eq!(parse_log_priority("\u{a0}7".as_bytes()), 0);
        assert_eq!(parse_log_priority(b" err"), 0);
        assert_eq!(parse_log_priority(b""), 0);
    }
}
