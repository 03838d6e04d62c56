//! Call-trace frames (`? my_oops_init+0x15/0x30 [oops_mod]`) and `RIP:` lines.

use crate::Frame;

/// Parses a call-trace line: optional `[<address>]` tokens, optional `? `, then
/// `function+0xoff/0xsize`, then an optional `[module]` (anything after it, such as a build id
/// or a symbolized `file:line`, is ignored).
pub(crate) fn parse_frame(msg: &str) -> Option<Frame> {
    let mut s = skip_addresses(msg.trim_start());
    let mut reliable = true;
    if let Some(rest) = s.strip_prefix("? ") {
        reliable = false;
        s = skip_addresses(rest.trim_start());
    }
    let mut frame = parse_symbol(s)?;
    // powerpc marks guesses with a trailing `(unreliable)`.
    frame.reliable = reliable && !s.ends_with("(unreliable)");
    Some(frame)
}

/// What a `RIP:` line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rip {
    /// User-mode registers (`RIP: 0033:0x7f...`).
    User,
    /// Kernel mode; the function when the address was symbolized.
    Kernel(Option<Frame>),
}

/// Parses `RIP: 0010:my_oops_init+0x15/0x30 [oops_mod]` and its older and other-arch spellings
/// (`RIP: 0010:[<ffffffff81234567>]  [<ffffffff81234567>] f+0x1/0x2`, `IP: f+0x1/0x2`,
/// `NIP [c00000000022d79c] f+0x1/0x2`). `None` when the line says neither a function nor an
/// address (such a line does not count as the RIP line).
pub(crate) fn parse_rip(msg: &str) -> Option<Rip> {
    let t = msg.trim_start();
    let rest = ["RIP:", "RIP ", "EIP:", "IP:", "NIP "]
        .iter()
        .find_map(|p| t.strip_prefix(p))?;
    let mut rest = rest.trim_start();
    let bytes = rest.as_bytes();
    if bytes.len() > 4 && bytes[4] == b':' && bytes[..4].iter().all(u8::is_ascii_hexdigit) {
        let segment = &rest[..4];
        if matches!(segment, "0033" | "0023" | "002b") {
            return Some(Rip::User);
        }
        rest = &rest[5..];
    }
    let rest = skip_addresses(rest.trim_start());
    match parse_symbol(rest) {
        Some(mut f) => {
            f.reliable = true;
            Some(Rip::Kernel(Some(f)))
        }
        None if rest.starts_with("0x") || rest.starts_with("(null)") => Some(Rip::Kernel(None)),
        None => None,
    }
}

/// Whether a line can appear inside a call trace without ending it: frames, `<IRQ>`-style
/// markers, register dumps, `Code:` and lockdep's irq event lines.
pub(crate) fn is_trace_line(msg: &str) -> bool {
    let t = msg.trim();
    if t.is_empty() || parse_frame(t).is_some() {
        return true;
    }
    if t.starts_with('<') && t.ends_with('>') && t.len() <= 12 {
        return true;
    }
    if t.ends_with("[inline]") || t.starts_with("[<") || t.starts_with("? ") {
        return true;
    }
    const PREFIXES: &[&str] = &[
        "RIP:",
        "RIP ",
        "RSP:",
        "RAX:",
        "RBX:",
        "RDX:",
        "RBP:",
        "RSI:",
        "R08:",
        "R10:",
        "R13:",
        "FS:",
        "CS:",
        "CR2:",
        "DR0:",
        "DR3:",
        "DR6:",
        "PKRU:",
        "Code:",
        "EIP:",
        "EAX:",
        "ESI:",
        "DS:",
        "IP:",
        "Exception stack",
        "irq event stamp",
        "hardirqs last",
        "softirqs last",
        "Stack:",
        "Call Trace",
        "Call trace",
        "-----",
    ];
    PREFIXES.iter().any(|p| t.starts_with(p))
}

/// Skips up to two `[<ffffffff81234567>]` (or powerpc's `[c000000049a87710]`) tokens.
fn skip_addresses(mut s: &str) -> &str {
    for _ in 0..2 {
        let Some(inside) = s.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            break;
        };
        let (addr, rest) = inside;
        let addr = addr.strip_prefix('<').unwrap_or(addr);
        let addr = addr.strip_suffix('>').unwrap_or(addr);
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x') {
            break;
        }
        s = rest.trim_start();
    }
    s
}

/// `name+0xoff/0xsize [module]`
fn parse_symbol(s: &str) -> Option<Frame> {
    let (name, rest) = s.split_once('+')?;
    if name.is_empty() || !name.bytes().all(is_function_byte) {
        return None;
    }
    let rest = rest.strip_prefix("0x")?;
    let (offset, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("0x")?;
    let size_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    let (size, rest) = rest.split_at(size_len);
    let offset = u64::from_str_radix(offset, 16).ok()?;
    let size = u64::from_str_radix(size, 16).ok()?;
    let rest = rest.trim_start();
    let module = rest
        .strip_prefix('[')
        .and_then(|r| r.split(|c: char| c == ']' || c.is_whitespace()).next())
        .filter(|m| !m.is_empty() && m.bytes().all(|b| is_function_byte(b) || b == b'-'))
        .map(str::to_owned);
    Some(Frame {
        offset: Some(offset),
        size: Some(size),
        module,
        ..named(name)
    })
}

/// A reliable frame of this symbol, demangled, with no offset, size or module.
pub(crate) fn named(symbol: &str) -> Frame {
    let (function, symbol) = match demangle(symbol) {
        Some(d) => (d, Some(symbol.to_owned())),
        None => (symbol.to_owned(), None),
    };
    Frame {
        function,
        symbol,
        reliable: true,
        ..Frame::default()
    }
}

/// Prefixes of a compiler's copies of a function: the CFI jump-table entry (`__cfi_f`) and the
/// padding before a function (`__pfx_f`).
pub(crate) const COPY_PREFIXES: &[&str] = &["__cfi_", "__pfx_"];

/// Whether the symbol is a compiler's copy of a function (`__cfi_f`, `__pfx_f`).
pub(crate) fn is_copy(symbol: &str) -> bool {
    COPY_PREFIXES.iter().any(|p| symbol.starts_with(p))
}

/// The demangled name of a mangled symbol, `None` when it is no mangled name: Rust v0
/// (`_RNv...`) and legacy (`_ZN...17h<hash>E`) symbols in rustc's alternate form (no hash),
/// plain C++ functions without their parameters. A copy's prefix (`__cfi_`) is dropped.
pub(crate) fn demangle(symbol: &str) -> Option<String> {
    let name = COPY_PREFIXES
        .iter()
        .find_map(|p| symbol.strip_prefix(p))
        .unwrap_or(symbol);
    if !name.starts_with("_R") && !name.starts_with("_Z") {
        return None;
    }
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        let d = format!("{d:#}");
        if !d.is_empty() && d != name {
            return Some(d);
        }
    }
    demangle_cxx(name)
}

/// `_Z8fakeNameiii` is `fakeName`, `_ZN3foo3barEv` is `foo::bar`, `_ZL4funcv` is `func`: the
/// names of plain C++ functions (Itanium ABI source names only; anything more is left alone).
fn demangle_cxx(name: &str) -> Option<String> {
    let mut rest = name.strip_prefix("_Z")?;
    rest = rest.strip_prefix('L').unwrap_or(rest);
    let nested = rest.starts_with('N');
    if nested {
        rest = &rest[1..];
    }
    let mut parts: Vec<&str> = Vec::new();
    loop {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            break;
        }
        let len: usize = rest[..n].parse().ok()?;
        let ident = rest.get(n..n + len)?;
        if ident.is_empty()
            || !ident
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        parts.push(ident);
        rest = &rest[n + len..];
        if !nested {
            break;
        }
    }
    if parts.is_empty() {
        return None;
    }
    if nested {
        rest = rest.strip_prefix('E')?;
    }
    // The parameter types (`iii`, `v`, `PKc`), or a clone suffix (`.isra.0`).
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return None;
    }
    Some(parts.join("::"))
}

fn is_function_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let f = parse_frame(" my_oops_init+0x15/0x30 [oops_mod]").unwrap();
        assert_eq!(f.function, "my_oops_init");
        assert_eq!(f.offset, Some(0x15));
        assert_eq!(f.size, Some(0x30));
        assert_eq!(f.module.as_deref(), Some("oops_mod"));
        assert!(f.reliable);
        let f = parse_frame(" ? do_one_initcall+0x5a/0x300").unwrap();
        assert!(!f.reliable);
        assert_eq!(f.module, None);
        let f = parse_frame(" [<ffffffff81234567>] ? shm_open.isra.5+0x74/0x80").unwrap();
        assert_eq!(f.function, "shm_open.isra.5");
        assert!(!f.reliable);
        let f = parse_frame(" f+0x1/0x2 [m 0123456789abcdef]").unwrap();
        assert_eq!(f.module.as_deref(), Some("m"));
        let f =
            parse_frame("[c000000049a87710] [c0000000000286fc] __switch_to+0x43c/0x6d0").unwrap();
        assert_eq!(f.function, "__switch_to");
        let f = parse_frame(
            "[c00000003ae5b800] [c00000000135c19c] dump_stack+0x128/0x1cc (unreliable)",
        )
        .unwrap();
        assert!(!f.reliable);
        let f = parse_frame(" dump_stack+0x194/0x257 lib/dump_stack.c:53").unwrap();
        assert_eq!(f.function, "dump_stack");
        assert_eq!(f.module, None);
    }

    #[test]
    fn not_frames() {
        for line in [
            "Code: 0f 0b",
            "RSP: 0018:ffffb1c0c04a7c68 EFLAGS: 00010246",
            " <TASK>",
            " __dump_stack lib/dump_stack.c:17 [inline]",
            "f+0x/0x2",
            "f+0x1/",
            "f+0xffffffffffffffffffff/0x2",
            "+0x1/0x2",
            "a b+0x1/0x2",
            "",
        ] {
            assert_eq!(parse_frame(line), None, "{line:?}");
        }
    }

    #[test]
    fn rip_lines() {
        let Some(Rip::Kernel(Some(f))) = parse_rip("RIP: 0010:my_oops_init+0x15/0x30 [oops_mod]")
        else {
            panic!("no frame")
        };
        assert_eq!(f.function, "my_oops_init");
        assert_eq!(f.module.as_deref(), Some("oops_mod"));
        assert_eq!(parse_rip("RIP: 0033:0x7f2a3e5e2719"), Some(Rip::User));
        assert_eq!(parse_rip("RIP: 0010:0x86"), Some(Rip::Kernel(None)));
        let Some(Rip::Kernel(Some(f))) =
            parse_rip("RIP: 0010:[<ffffffff8123>]  [<ffffffff8123>] foo+0x1/0x2")
        else {
            panic!("no frame")
        };
        assert_eq!(f.function, "foo");
        assert_eq!(parse_rip("RSP: 0018:ffff"), None);
        assert_eq!(parse_rip("RIP:"), None);
        assert_eq!(
            parse_rip("NIP:  c00000000022d79c LR: c00000000022d784 CTR: 0"),
            None
        );
    }

    #[test]
    fn trace_lines() {
        assert!(is_trace_line(" </IRQ>"));
        assert!(is_trace_line("RIP: 0033:0x7f2a3e5e2719"));
        assert!(is_trace_line(" ? foo+0x1/0x2"));
        assert!(!is_trace_line("Modules linked in: oops_mod(OE+)"));
        assert!(!is_trace_line("Showing all locks held in the system:"));
        assert!(!is_trace_line("Kernel Offset: disabled"));
    }
}

#[cfg(test)]
mod demangle_tests {
    use super::*;

    #[test]
    fn rust_v0_symbols() {
        let f = parse_frame(
            " ? _RNvMs0_NtCshgDM7dBCdno_11rust_binder4nodeNtB5_4Node22update_refcount_locked+0x401/0x810",
        )
        .unwrap();
        assert_eq!(
            f.function,
            "<rust_binder::node::Node>::update_refcount_locked"
        );
        assert_eq!(
            f.symbol.as_deref(),
            Some("_RNvMs0_NtCshgDM7dBCdno_11rust_binder4nodeNtB5_4Node22update_refcount_locked")
        );
        assert_eq!((f.offset, f.size), (Some(0x401), Some(0x810)));
        assert!(!f.reliable);
        let Some(Rip::Kernel(Some(f))) =
            parse_rip("RIP: 0010:_RNvCs1234_8oops_mod4init+0x15/0x30 [oops_mod]")
        else {
            panic!("no frame")
        };
        assert_eq!(f.function, "oops_mod::init");
        assert_eq!(f.symbol.as_deref(), Some("_RNvCs1234_8oops_mod4init"));
        assert_eq!(f.module.as_deref(), Some("oops_mod"));
        assert_eq!(
            demangle(
                "_RNvXs1_CscPPBqWtAqum_11ashmem_rustNtB5_6AshmemNtNtCs43vyB533jt3_6kernel10miscdevice10MiscDevice4mmap"
            )
            .as_deref(),
            Some("<ashmem_rust::Ashmem as kernel::miscdevice::MiscDevice>::mmap")
        );
        assert_eq!(
            demangle("_RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind").as_deref(),
            Some("__rustc::rust_begin_unwind")
        );
    }

    #[test]
    fn rust_legacy_symbols_lose_their_hash() {
        let f =
            parse_frame(" _ZN11rust_binder4node4Node22update_refcount_locked17h0123456789abcdefE+0x1/0x2 [rust_binder]")
                .unwrap();
        assert_eq!(
            f.function,
            "rust_binder::node::Node::update_refcount_locked"
        );
        assert_eq!(
            f.symbol.as_deref(),
            Some("_ZN11rust_binder4node4Node22update_refcount_locked17h0123456789abcdefE")
        );
        assert_eq!(f.module.as_deref(), Some("rust_binder"));
        assert_eq!(
            demangle("_ZN4core9panicking9panic_fmt17h1a2b3c4d5e6f7a8bE").as_deref(),
            Some("core::panicking::panic_fmt")
        );
    }

    #[test]
    fn cfi_copies_name_the_function_they_stand_for() {
        let f = parse_frame(
            " ? __cfi__RNvMs0_NtCshgDM7dBCdno_11rust_binder4nodeNtB5_4Node22update_refcount_locked+0x10/0x10",
        )
        .unwrap();
        assert_eq!(
            f.function,
            "<rust_binder::node::Node>::update_refcount_locked"
        );
        assert!(f.symbol.as_deref().is_some_and(is_copy));
        assert_eq!(
            demangle("__pfx__RNvCs1234_8oops_mod4init").as_deref(),
            Some("oops_mod::init")
        );
        // A C function's copy is no mangled name: printed as is.
        let f = parse_frame(" ? __cfi__raw_spin_lock+0x10/0x10").unwrap();
        assert_eq!(f.function, "__cfi__raw_spin_lock");
        assert_eq!(f.symbol, None);
    }

    #[test]
    fn plain_cxx_and_c_names() {
        assert_eq!(demangle("_Z8fakeNameiii").as_deref(), Some("fakeName"));
        assert_eq!(demangle("_ZN3foo3barEv").as_deref(), Some("foo::bar"));
        assert_eq!(demangle("_ZL4funcv").as_deref(), Some("func"));
        for name in [
            "_Zfoo",
            "_Rfoo",
            "_raw_spin_lock",
            "my_oops_init",
            "_Z99x",
            "_RNv",
        ] {
            assert_eq!(demangle(name), None, "{name}");
        }
        let f = parse_frame(" my_oops_init+0x15/0x30 [oops_mod]").unwrap();
        assert_eq!(f.symbol, None);
    }
}
