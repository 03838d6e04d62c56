//! The symbolizer on real modules built with Kbuild against this machine's kernel headers,
//! checked against the source's marker lines and binutils (`addr2line`, `objdump`, `readelf`).

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use kmodlab_symbolize::{DebugFile, LocateError, Symbolizer};

/// Checks `function` over every byte of it against `addr2line -i -f -j SECTION`.
fn compare_with_binutils(ko: &Path, section: &str, function: &str) -> usize {
    let file = DebugFile::open(ko).unwrap();
    let (value, size) = readelf_symbol(ko, function);
    let addrs: Vec<u64> = (value..value + size).collect();
    let expected = addr2line(ko, section, &addrs);
    let mut compared = 0;
    for (off, want) in (0..size).zip(expected) {
        let got = file.locate(function, off, false, None);
        if want.is_empty() {
            continue;
        }
        let got =
            got.unwrap_or_else(|e| panic!("{function}+{off:#x}: {e}, binutils says {want:?}"));
        let mut chain = vec![(
            got.function.clone(),
            format!("{}:{}", basename(&got.file), got.line),
        )];
        for c in &got.inlined_by {
            let (f, loc) = c.split_once(" at ").unwrap();
            let (file, line) = loc.rsplit_once(':').unwrap();
            chain.push((f.to_string(), format!("{}:{line}", basename(file))));
        }
        // binutils prints linkage names mangled; we demangle Rust names.
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(f, l)| match rustc_demangle::try_demangle(&f) {
                Ok(d) => (format!("{d:#}"), l),
                Err(_) => (f, l),
            })
            .collect();
        assert_eq!(
            chain,
            want,
            "{function}+{off:#x} ({section}+{:#x})",
            value + off
        );
        compared += 1;
    }
    assert!(compared > 0, "{function}: nothing compared");
    compared
}

fn basename(p: &str) -> String {
    Path::new(p)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn symfix_every_byte_matches_binutils_in_text_init_and_exit() {
    let Some(ko) = symfix() else { return };
    let n = compare_with_binutils(&ko, ".text", "symfix_work")
        + compare_with_binutils(&ko, ".text", "symfix_exported")
        + compare_with_binutils(&ko, ".text", "_RNvCs1234abcd_9rust_oops4init")
        + compare_with_binutils(&ko, ".init.text", "symfix_init")
        + compare_with_binutils(&ko, ".exit.text", "symfix_exit");
    eprintln!("{n} addresses agree with binutils addr2line");
}

#[test]
fn symfix_inline_chain_and_marker_lines() {
    let Some(ko) = symfix() else { return };
    let src = ko.with_file_name("symfix.c");
    let file = DebugFile::open(&ko).unwrap();
    assert_eq!(file.module_name(), Some("symfix"));
    assert!(file.has_debug_info());
    // The store of inner_store, inlined into middle, inlined into symfix_work.
    let (value, _) = readelf_symbol(&ko, "symfix_work");
    let stores = objdump_find(&ko, ".text", "mov    %edx,(%rax)");
    assert_eq!(stores.len(), 1, "{stores:?}");
    let off = stores[0] - value;
    let loc = file.locate("symfix_work", off, false, None).unwrap();
    assert_eq!(loc.function, "inner_store");
    assert_eq!(
        loc.source(),
        format!("symfix.c:{}", line_of(&src, "MARK: inner_store"))
    );
    assert_eq!(
        loc.inlined_by,
        vec![
            format!("middle at symfix.c:{}", line_of(&src, "MARK: middle_call")),
            format!(
                "symfix_work at symfix.c:{}",
                line_of(&src, "MARK: work_call_middle")
            ),
        ]
    );
    assert_eq!(loc.source_path(), src.canonicalize().unwrap());

    // A global function in .text.
    let loc = file.locate("symfix_exported", 0x9, false, None).unwrap();
    assert_eq!(
        loc.source(),
        format!("symfix.c:{}", line_of(&src, "MARK: exported_add"))
    );
    assert!(loc.inlined_by.is_empty());
}

#[test]
fn return_addresses_are_looked_up_one_byte_back() {
    let Some(ko) = symfix() else { return };
    let src = ko.with_file_name("symfix.c");
    let file = DebugFile::open(&ko).unwrap();
    // The call to symfix_exported in symfix_init (.init.text), found in our own disassembly
    // and checked against objdump's relocation.
    let ins = file.disassemble_function("symfix_init", None).unwrap();
    let call = ins
        .iter()
        .find(|i| i.text == "call symfix_exported")
        .expect("call symfix_exported");
    let (value, _) = readelf_symbol(&ko, "symfix_init");
    let reloc = std::process::Command::new("objdump")
        .args(["-dr", "-j", ".init.text"])
        .arg(&ko)
        .output()
        .unwrap();
    let reloc = String::from_utf8_lossy(&reloc.stdout);
    let want = format!(
        "{:x}: R_X86_64_PLT32\tsymfix_exported-0x4",
        value + call.offset as u64 + 1
    );
    assert!(reloc.contains(&want), "{want} not in objdump -dr output");

    let ret = (call.offset as u64) + call.bytes.len() as u64;
    let as_return = file.locate("symfix_init", ret, true, None).unwrap();
    assert_eq!(
        as_return.source(),
        format!("symfix.c:{}", line_of(&src, "MARK: init_call"))
    );
    let as_rip = file.locate("symfix_init", ret, false, None).unwrap();
    assert_ne!(
        as_rip.line, as_return.line,
        "the next instruction is another line"
    );
}

/// The lab's oops log (from crates/crash/tests/module_crashes.rs), with the function's offset
/// and size as this build has them.
fn oops_log(off: u64, size: u64) -> String {
    format!(
        "\
[   12.877834] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   12.878389] #PF: supervisor write access in kernel mode
[   12.878805] #PF: error_code(0x0002) - not-present page
[   12.879211] PGD 0 P4D 0 
[   12.879437] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[   12.879837] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1  Debian 6.12.12-1~bpo12+1
[   12.880726] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[   12.881150] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   12.881899] RIP: 0010:my_oops_init+{off:#x}/{size:#x} [oops_mod]
[   12.882335] Code: Unable to access opcode bytes at 0xffffffffc0a0efeb.
[   12.882851] RSP: 0018:ffffa9e0c04bfc68 EFLAGS: 00010246
[   12.883265] RAX: 0000000000000000 RBX: ffffffffc0a0f000 RCX: 0000000000000000
[   12.887113] CR2: 0000000000000000 CR3: 0000000002c62000 CR4: 00000000000006f0
[   12.887669] Call Trace:
[   12.887882]  <TASK>
[   12.888067]  ? __die+0x23/0x70
[   12.888337]  ? page_fault_oops+0x173/0x5b0
[   12.888683]  ? exc_page_fault+0x7e/0x180
[   12.889017]  ? asm_exc_page_fault+0x26/0x30
[   12.889374]  ? __pfx_my_oops_init+0x10/0x10 [oops_mod]
[   12.889806]  ? my_oops_init+{off:#x}/{size:#x} [oops_mod]
[   12.890204]  do_one_initcall+0x5b/0x340
[   12.890532]  do_init_module+0x60/0x240
[   12.890853]  init_module_from_file+0x89/0xe0
[   12.891214]  idempotent_init_module+0x11e/0x310
[   12.891595]  __x64_sys_finit_module+0x5e/0xb0
[   12.891966]  do_syscall_64+0x82/0x190
[   12.892940]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   12.898447]  </TASK>
[   12.898634] Modules linked in: oops_mod(OE+) virtio_console
[   12.899082] CR2: 0000000000000000
[   12.899356] ---[ end trace 0000000000000000 ]---
"
    )
}

/// The offset of the faulting store (`*p = 'a'`) in my_oops_init, from objdump.
fn oops_store(ko: &Path) -> (u64, u64) {
    let (value, size) = readelf_symbol(ko, "my_oops_init");
    let stores = objdump_find(ko, ".text", "movb   $0x61,0x0");
    assert_eq!(stores.len(), 1, "{stores:?}");
    (stores[0] - value, size)
}

#[test]
fn oops_mod_report_gets_the_faulting_line() {
    let Some(ko) = oops_mod() else { return };
    let src = ko.with_file_name("oops_mod.c");
    let line = line_of(&src, "*p = 'a';");
    let (off, size) = oops_store(&ko);
    eprintln!("my_oops_init+{off:#x}/{size:#x}");

    let file = DebugFile::open(&ko).unwrap();
    assert_eq!(file.function_size("my_oops_init"), Some(size));
    let loc = file.locate("my_oops_init", off, false, Some(size)).unwrap();
    assert_eq!(loc.source(), format!("oops_mod.c:{line}"));

    let mut reports = kmodlab_crash::parse_reports(&oops_log(off, size));
    assert_eq!(reports.len(), 1);
    let report = &mut reports[0];
    let mut sym = Symbolizer::new();
    assert_eq!(sym.add_module_dir(ko.parent().unwrap()).unwrap(), 1);
    let notes = sym.symbolize(report);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(report.function.as_deref(), Some("my_oops_init"));
    assert_eq!(
        report.source.as_deref(),
        Some(format!("oops_mod.c:{line}").as_str())
    );
    let rip = report.frames.iter().find(|f| f.rip).unwrap();
    assert_eq!(rip.source, report.source);
    // `? my_oops_init+off` from the exception frame is the faulting address too.
    let q = report
        .frames
        .iter()
        .find(|f| !f.rip && f.function == "my_oops_init")
        .unwrap();
    assert_eq!(q.source, report.source);
    // `Code: Unable to access opcode bytes`: the code comes from the .ko instead.
    assert!(report.text.contains("Code: Unable to access opcode bytes"));
    let ins = sym.disassemble_frame(rip, 8).unwrap().unwrap();
    let f = ins.iter().find(|i| i.faulting).unwrap();
    assert_eq!(f.offset as u64, off);
    assert_eq!(f.text, "movb $0x61,0x0");
    assert_eq!(
        f.source.as_deref(),
        Some(format!("oops_mod.c:{line}").as_str())
    );
    assert!(ins.iter().any(|i| i.text == "call _printk"));
    // Kernel frames: no vmlinux, left alone.
    assert!(report
        .frames
        .iter()
        .filter(|f| f.module.is_none())
        .all(|f| f.source.is_none()));
}

#[test]
fn stale_build_is_detected_not_mislabelled() {
    let Some(ko) = oops_mod() else { return };
    let (off, size) = oops_store(&ko);
    let file = DebugFile::open(&ko).unwrap();
    let err = file
        .locate("my_oops_init", off, false, Some(size + 8))
        .unwrap_err();
    assert!(
        matches!(err, LocateError::StaleBuild { log_size, file_size, .. } if log_size == size + 8 && file_size == size)
    );
    let msg = err.to_string();
    assert!(msg.contains("not the build that crashed"), "{msg}");
    assert!(
        msg.contains(&format!(
            "{:#x} bytes in the log, {size:#x} in the file",
            size + 8
        )),
        "{msg}"
    );

    // A real second build with one more statement: the first build's log against it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("symbolize/oops-mod-src2");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["Kbuild", "Makefile"] {
        std::fs::copy(ko.with_file_name(f), dir.join(f)).unwrap();
    }
    let c = std::fs::read_to_string(ko.with_file_name("oops_mod.c")).unwrap();
    let c = c.replace("\t*p = 'a';", "\tpr_info(\"one more line %d\\n\", 42);\n\tpr_info(\"and another %d\\n\", 43);\n\t*p = 'a';");
    std::fs::write(dir.join("oops_mod.c"), c).unwrap();
    let Some(ko2) = build_at(&dir, "oops-mod-2", "oops_mod.ko") else {
        return;
    };
    let (_, size2) = readelf_symbol(&ko2, "my_oops_init");
    assert_ne!(size, size2);
    let mut reports = kmodlab_crash::parse_reports(&oops_log(off, size));
    let report = &mut reports[0];
    let mut sym = Symbolizer::new();
    sym.add_module_file(&ko2).unwrap();
    let notes = sym.symbolize(report);
    assert_eq!(report.source, None);
    assert!(report.frames.iter().all(|f| f.source.is_none()));
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("oops_mod: "), "{}", notes[0]);
    assert!(
        notes[0].contains("not the build that crashed"),
        "{}",
        notes[0]
    );
    eprintln!("note: {}", notes[0]);
}

#[test]
fn init_and_exit_text_functions_map_to_their_own_lines() {
    // null_deref: a load in .init.text.
    if let Some(ko) = null_deref() {
        let src = ko.with_file_name("null_deref.c");
        let file = DebugFile::open(&ko).unwrap();
        let (value, _) = readelf_symbol(&ko, "null_deref_init");
        let loads = objdump_find(&ko, ".init.text", ",%esi");
        let load = loads
            .iter()
            .copied()
            .find(|a| {
                let l = file
                    .locate("null_deref_init", a - value, false, None)
                    .unwrap();
                l.line == line_of(&src, "READ_ONCE(*p)")
            })
            .expect("the load of READ_ONCE(*p)");
        let mut out = String::new();
        for a in &loads {
            out += &format!("{a:#x} ");
        }
        eprintln!(
            "null_deref_init loads at {out}: fault at +{:#x}",
            load - value
        );
        // The whole function against binutils too.
        compare_with_binutils(&ko, ".init.text", "null_deref_init");
    }
    // exit_oops: a store in .exit.text.
    if let Some(ko) = exit_oops() {
        let src = ko.with_file_name("exit_oops.c");
        let file = DebugFile::open(&ko).unwrap();
        let (value, size) = readelf_symbol(&ko, "exit_oops_exit");
        let stores = objdump_find(&ko, ".exit.text", "movl   $0x1,0x0");
        assert_eq!(stores.len(), 1, "{stores:?}");
        let off = stores[0] - value;
        let loc = file
            .locate(
                "exit_oops_exit",
                off,
                false,
                file.function_size("exit_oops_exit"),
            )
            .unwrap();
        assert_eq!(
            loc.source(),
            format!("exit_oops.c:{}", line_of(&src, "WRITE_ONCE(*p, 1);"))
        );
        assert!(size > off);
        compare_with_binutils(&ko, ".exit.text", "exit_oops_exit");
        compare_with_binutils(&ko, ".init.text", "exit_oops_init");
    }
}

#[test]
fn disassembles_init_text_with_calls_named_and_lines() {
    let Some(ko) = symfix() else { return };
    let src = ko.with_file_name("symfix.c");
    let file = DebugFile::open(&ko).unwrap();
    let (_, size) = readelf_symbol(&ko, "symfix_init");
    let ins = file
        .disassemble_function("symfix_init", Some(0x2c))
        .unwrap();
    let listing = kmodlab_symbolize::format_listing(&ins);
    eprintln!("{listing}");
    assert_eq!(ins.iter().map(|i| i.bytes.len() as u64).sum::<u64>(), size);
    assert_eq!(ins[0].text, "endbr64");
    // GCC puts a function's entry on the line of its opening brace.
    let brace = line_of(&src, "symfix_init(void)") + 1;
    assert_eq!(
        ins[0].source.as_deref(),
        Some(format!("symfix.c:{brace}").as_str())
    );
    assert!(ins.iter().any(|i| i.text == "call __fentry__"));
    assert_eq!(ins.iter().filter(|i| i.text == "call _printk").count(), 2);
    assert!(ins.iter().any(|i| i.text == "call symfix_exported"));
    assert!(ins.iter().any(|i| i.text == "jmp __x86_return_thunk"));
    // Module parameter `depth` in .data, string literals in .rodata.str1.1.
    assert!(
        ins.iter().any(|i| i.text.contains("depth(%rip)")),
        "{listing}"
    );
    assert!(
        ins.iter().any(|i| i.text.contains("$.rodata.str1.1+")),
        "{listing}"
    );
    for mark in ["MARK: init_printk", "MARK: init_call", "MARK: init_result"] {
        let want = format!("symfix.c:{}", line_of(&src, mark));
        assert!(
            ins.iter()
                .any(|i| i.source.as_deref() == Some(want.as_str())),
            "{want} not in\n{listing}"
        );
    }
    let faulting: Vec<_> = ins.iter().filter(|i| i.faulting).collect();
    assert_eq!(faulting.len(), 1);
    assert!(
        faulting[0].offset <= 0x2c && 0x2c < faulting[0].offset + faulting[0].bytes.len() as i64
    );

    // The oops function, around the fault: the store and its line.
    let Some(ko) = oops_mod() else { return };
    let (off, _) = oops_store(&ko);
    let file = DebugFile::open(&ko).unwrap();
    let ins = file.disassemble_around("my_oops_init", off, 3).unwrap();
    let listing = kmodlab_symbolize::format_listing(&ins);
    eprintln!("{listing}");
    let f = ins.iter().find(|i| i.faulting).unwrap();
    assert_eq!(f.offset as u64, off);
    assert_eq!(f.text, "movb $0x61,0x0");
    let line = line_of(&ko.with_file_name("oops_mod.c"), "*p = 'a';");
    assert_eq!(
        f.source.as_deref(),
        Some(format!("oops_mod.c:{line}").as_str())
    );
    assert!(ins.len() <= 7);
}

#[test]
fn compressed_modules_give_the_same_answers() {
    let Some(ko) = symfix() else { return };
    let plain = DebugFile::open(&ko).unwrap();
    let want = plain.locate("symfix_init", 0x20, false, None).unwrap();
    for (tool, args, ext) in [
        ("xz", &["-k", "-f", "-c"][..], "xz"),
        ("zstd", &["-q", "-f", "-c"][..], "zst"),
        ("gzip", &["-k", "-f", "-c"][..], "gz"),
    ] {
        let out = match std::process::Command::new(tool)
            .args(args)
            .arg(&ko)
            .output()
        {
            Ok(o) if o.status.success() => o.stdout,
            _ => {
                eprintln!("{tool} not available");
                continue;
            }
        };
        let path = ko.with_extension(format!("ko.{ext}"));
        std::fs::write(&path, out).unwrap();
        let file = DebugFile::open(&path).unwrap();
        assert_eq!(file.module_name(), Some("symfix"));
        assert_eq!(
            file.locate("symfix_init", 0x20, false, None).unwrap(),
            want,
            "{tool}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn twenty_frame_report_timing() {
    let Some(ko) = symfix() else { return };
    let functions = [
        "symfix_work",
        "symfix_exported",
        "symfix_init",
        "symfix_exit",
        "rust_oops::init",
    ];
    let file = DebugFile::open(&ko).unwrap();
    // Return addresses: the instruction after each call.
    let mut returns = Vec::new();
    for f in functions {
        let size = file.function_size(f).unwrap();
        for i in file.disassemble_function(f, None).unwrap() {
            if i.text.starts_with("call ") {
                returns.push((f, i.offset as u64 + i.bytes.len() as u64, size));
            }
        }
    }
    let rip = file.disassemble_function("symfix_work", None).unwrap()[2].offset;
    let mut trace = String::new();
    for i in 0..20 {
        let (f, off, size) = returns[i % returns.len()];
        trace += &format!("[    1.{i:06}]  {f}+{off:#x}/{size:#x} [symfix]\n");
    }
    let log = format!(
        "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    1.000001] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[    1.000002] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[    1.000003] RIP: 0010:symfix_work+{rip:#x}/{:#x} [symfix]
[    1.000004] Call Trace:
[    1.000005]  <TASK>
{trace}[    1.999999]  </TASK>
[    2.000000] ---[ end trace 0000000000000000 ]---
",
        file.function_size("symfix_work").unwrap()
    );
    let reports = kmodlab_crash::parse_reports(&log);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].frames.len() >= 20, "{}", reports[0].frames.len());

    let t = Instant::now();
    let mut sym = Symbolizer::new();
    sym.add_module_dir(ko.parent().unwrap()).unwrap();
    let mut report = reports[0].clone();
    let notes = sym.symbolize(&mut report);
    let cold = t.elapsed();
    let t = Instant::now();
    let mut again = reports[0].clone();
    sym.symbolize(&mut again);
    let warm = t.elapsed();
    assert!(notes.is_empty(), "{notes:?}");
    let done = report.frames.iter().filter(|f| f.source.is_some()).count();
    assert!(done >= 20, "{done} frames symbolized");
    eprintln!(
        "symbolizing a {}-frame module report: {:.2} ms with loading the .ko, {:.3} ms once loaded",
        report.frames.len(),
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
}

/// A tiny xorshift generator: reproducible garbage without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn exercise(bytes: Vec<u8>) {
    let Ok(file) = DebugFile::from_bytes(Path::new("garbled.ko"), bytes) else {
        return;
    };
    let _ = file.module_name();
    for f in [
        "symfix_work",
        "symfix_init",
        "symfix_exit",
        "symfix_exported",
        "nope",
    ] {
        let _ = file.function_size(f);
        for off in [0u64, 1, 0x10, 0x21, 0x31, 0x1000] {
            let _ = file.locate(f, off, off % 2 == 0, Some(0x30));
            let _ = file.locate(f, off, false, None);
        }
        let _ = file.disassemble_function(f, Some(3));
    }
}

#[test]
fn malformed_elf_never_panics() {
    let Some(ko) = symfix() else { return };
    let good = std::fs::read(&ko).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    // Truncations.
    for i in 0..60 {
        let len = (rng.next() as usize) % good.len();
        let len = if i < 8 { i * 8 } else { len };
        exercise(good[..len].to_vec());
    }
    // Random bytes changed, densely in the headers and sparsely everywhere.
    let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
    for i in 0..1200 {
        let mut bad = good.clone();
        let n = 1 + (rng.next() % 16) as usize;
        for _ in 0..n {
            let pos = match i % 3 {
                0 => (rng.next() as usize) % 0x40,
                1 => shoff + (rng.next() as usize) % (good.len() - shoff),
                _ => (rng.next() as usize) % good.len(),
            };
            bad[pos] = rng.next() as u8;
        }
        exercise(bad);
    }
    eprintln!("1260 garbled images in {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn vmlinux_style_executable() {
    // A statically positioned x86_64 executable (ET_EXEC) with DWARF stands in for a vmlinux:
    // no relocations, addresses as linked.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("symbolize/exec");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = "\
#include <stdio.h>
static inline __attribute__((always_inline)) int twice(volatile int *p)
{
	return *p * 2; /* MARK: twice */
}
__attribute__((noinline)) int kfunc(volatile int *p)
{
	printf(\"kfunc\\n\"); /* MARK: printf */
	return twice(p) + 1;
}
int main(void)
{
	volatile int v = 3;
	return kfunc(&v); /* MARK: main_call */
}
";
    let src = dir.join("lib.c");
    std::fs::write(&src, c).unwrap();
    let exe = dir.join("vmlinux");
    if kmodlab_testkit::require_program("gcc").is_none() {
        return;
    }
    let ok = std::process::Command::new("gcc")
        .args(["-g", "-O2", "-no-pie", "-fno-pie", "-o"])
        .arg(&exe)
        .arg(&src)
        .current_dir(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "gcc failed to compile {}", src.display());
    let file = DebugFile::open(&exe).unwrap();
    assert_eq!(file.module_name(), None);
    let (value, size) = readelf_symbol(&exe, "kfunc");
    let addrs: Vec<u64> = (value..value + size).collect();
    let want = addr2line(
        &exe,
        ".text",
        &addrs
            .iter()
            .map(|a| a - section_addr(&exe, ".text"))
            .collect::<Vec<_>>(),
    );
    let mut agreed = 0;
    for (off, want) in (0..size).zip(want) {
        if want.is_empty() {
            continue;
        }
        let got = file.locate("kfunc", off, false, None).unwrap();
        assert_eq!(
            (
                got.function.clone(),
                format!("{}:{}", basename(&got.file), got.line)
            ),
            want[0],
            "kfunc+{off:#x}"
        );
        agreed += 1;
    }
    assert!(agreed > 0);
    // Through the symbolizer: a kernel frame (no module) goes to the vmlinux.
    let calls = file.disassemble_function("main", None).unwrap();
    let call = calls
        .iter()
        .find(|i| i.text == "call kfunc")
        .expect("call kfunc");
    let ret = call.offset as u64 + call.bytes.len() as u64;
    let log = format!(
        "[    1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    1.1] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[    1.2] RIP: 0010:kfunc+0x1/{size:#x}
[    1.3] Call Trace:
[    1.4]  <TASK>
[    1.5]  main+{ret:#x}/{:#x}
[    1.6]  </TASK>
[    1.7] ---[ end trace 0000000000000000 ]---
",
        file.function_size("main").unwrap()
    );
    let mut reports = kmodlab_crash::parse_reports(&log);
    let report = &mut reports[0];
    let mut sym = Symbolizer::new();
    sym.set_vmlinux(&exe).unwrap();
    let notes = sym.symbolize(report);
    assert!(notes.is_empty(), "{notes:?}");
    let main = report.frames.iter().find(|f| f.function == "main").unwrap();
    assert_eq!(
        main.source.as_deref(),
        Some(format!("lib.c:{}", line_of(&src, "MARK: main_call")).as_str())
    );
}

fn section_addr(file: &Path, name: &str) -> u64 {
    let out = std::process::Command::new("readelf")
        .arg("-SW")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let line = line.trim_start().trim_start_matches('[').trim_start();
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[1] == name {
            return u64::from_str_radix(f[3], 16).unwrap();
        }
    }
    panic!("no section {name}");
}

#[test]
fn rust_mangled_symbols_are_found_and_demangled() {
    let Some(ko) = symfix() else { return };
    let src = ko.with_file_name("symfix.c");
    let want = format!("symfix.c:{}", line_of(&src, "MARK: rust_like"));
    let file = DebugFile::open(&ko).unwrap();
    let mangled = "_RNvCs1234abcd_9rust_oops4init";
    let size = file.function_size(mangled).unwrap();
    assert_eq!(file.function_size("rust_oops::init"), Some(size));
    // The body's first line, after `endbr64; call __fentry__`.
    let loc = file
        .locate("rust_oops::init", 9, false, Some(size))
        .unwrap();
    assert_eq!(loc.source(), want);
    assert_eq!(file.locate(mangled, 9, false, Some(size)).unwrap(), loc);
    // Calls to it are named demangled.
    let ins = file.disassemble_function("symfix_init", None).unwrap();
    assert!(
        ins.iter().any(|i| i.text == "call rust_oops::init"),
        "{}",
        kmodlab_symbolize::format_listing(&ins)
    );

    let log = format!(
        "[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    1.000001] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI
[    1.000002] CPU: 0 UID: 0 PID: 171 Comm: insmod Tainted: G           OE      6.12.12-amd64 #1
[    1.000003] RIP: 0010:{mangled}+0x9/{size:#x} [symfix]
[    1.000004] Call Trace:
[    1.000005]  <TASK>
[    1.000006]  {mangled}+0x9/{size:#x} [symfix]
[    1.000007]  do_one_initcall+0x5b/0x340
[    1.999999]  </TASK>
[    2.000000] ---[ end trace 0000000000000000 ]---
"
    );
    let mut reports = kmodlab_crash::parse_reports(&log);
    let report = &mut reports[0];
    let mut sym = Symbolizer::new();
    sym.add_module_file(&ko).unwrap();
    let notes = sym.symbolize(report);
    assert!(notes.is_empty(), "{notes:?}");
    let rip = report.frames.iter().find(|f| f.rip).unwrap();
    assert_eq!(rip.function, "rust_oops::init");
    assert_eq!(rip.source.as_deref(), Some(want.as_str()));
    if report.function.is_some() {
        assert_eq!(report.function.as_deref(), Some("rust_oops::init"));
        assert_eq!(report.source.as_deref(), Some(want.as_str()));
    }
}

/// A KFENCE report as Debian's 6.12 kernel prints it (from a kmodlab run), with the offset of
/// the faulting read in this build.
fn kfence_log(off: u64) -> String {
    format!(
        "\
[    9.506031] kfence_oob: KFENCE object after 2 tries, left-aligned: reading p[-1]
[    9.507394] ==================================================================
[    9.507533] BUG: KFENCE: out-of-bounds read in kfence_oob_init+{off:#x}/0xff0 [kfence_oob]
[    9.507533] 
[    9.507965] Out-of-bounds read at 0x000000001ae5643e (1B left of kfence-#12):
[    9.508386]  kfence_oob_init+{off:#x}/0xff0 [kfence_oob]
[    9.508560]  do_one_initcall+0x58/0x320
[    9.508645]  do_init_module+0x60/0x270
[    9.508686]  init_module_from_file+0x89/0xe0
[    9.509031]  idempotent_init_module+0x11d/0x310
[    9.509314]  __x64_sys_finit_module+0x5e/0xb0
[    9.509531]  do_syscall_64+0x87/0x1b0
[    9.509717]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[    9.510003] 
[    9.510200] kfence-#12: 0x000000006b0200ca-0x00000000ae34f6d3, size=32, cache=kmalloc-32
[    9.510200] 
[    9.512555] CPU: 0 UID: 0 PID: 127 Comm: insmod Tainted: G           OE      6.12.95+deb12-amd64 #1  Debian 6.12.95-1~bpo12+1
[    9.513030] Tainted: [O]=OOT_MODULE, [E]=UNSIGNED_MODULE
[    9.513120] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2~bpo12+1 04/01/2014
[    9.513717] ==================================================================
"
    )
}

#[test]
fn kfence_first_frame_is_the_faulting_read_and_last_function_sizes_are_page_rounded() {
    let Some(ko) = kfence_oob() else { return };
    let src = ko.with_file_name("kfence_oob.c");
    let line = line_of(&src, "c = READ_ONCE(*q);");
    let file = DebugFile::open(&ko).unwrap();
    // The only function in .init.text: kallsyms measures it to the end of the page-rounded
    // init text, as the real log shows (`/0xff0`).
    assert_eq!(file.function_size("kfence_oob_init"), Some(0xff0));
    // The read: the instruction that binutils puts on the READ_ONCE line.
    let (value, size) = readelf_symbol(&ko, "kfence_oob_init");
    let starts: Vec<u64> = file
        .disassemble_function("kfence_oob_init", None)
        .unwrap()
        .iter()
        .map(|i| i.offset as u64)
        .collect();
    let lines = addr2line(
        &ko,
        ".init.text",
        &starts.iter().map(|o| value + o).collect::<Vec<_>>(),
    );
    let want = format!("kfence_oob.c:{line}");
    let off = starts
        .iter()
        .zip(&lines)
        .find(|(_, l)| l.first().is_some_and(|f| f.1 == want))
        .map(|(o, _)| *o)
        .expect("an instruction on the READ_ONCE line");
    assert!(off < size);

    let mut reports = kmodlab_crash::parse_reports(&kfence_log(off));
    assert_eq!(reports.len(), 1);
    let report = &mut reports[0];
    assert!(
        report
            .title
            .starts_with("KFENCE: out-of-bounds read in kfence_oob_init"),
        "{}",
        report.title
    );
    let mut sym = Symbolizer::new();
    sym.add_module_dir(ko.parent().unwrap()).unwrap();
    let notes = sym.symbolize(report);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(report.source.as_deref(), Some(want.as_str()));

    // The same log against a build where that offset falls inside an instruction: another
    // build, whatever the sizes say.
    let inside = starts
        .windows(2)
        .find(|w| w[1] - w[0] > 1)
        .map(|w| w[0] + 1)
        .unwrap();
    let mut reports = kmodlab_crash::parse_reports(&kfence_log(inside));
    let report = &mut reports[0];
    let notes = sym.symbolize(report);
    assert_eq!(report.source, None);
    assert!(report.frames.iter().all(|f| f.source.is_none()));
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("is not the start of an instruction there"),
        "{}",
        notes[0]
    );
    assert!(matches!(
        file.check_address("kfence_oob_init", inside, Some(0xff0)),
        Err(LocateError::NotAtInstruction { .. })
    ));
    assert_eq!(
        file.check_address("kfence_oob_init", off, Some(0xff0)),
        Ok(())
    );
    assert!(matches!(
        file.check_address("kfence_oob_init", size + 1, Some(0xff0)),
        Err(LocateError::OutOfRange { .. })
    ));
}
