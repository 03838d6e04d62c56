//! `Code:` lines of real reports, disassembled with the faulting instruction marked, checked by
//! hand on a few and against `objdump -D -b binary` on the whole syzkaller corpus.

use std::path::Path;
use std::process::Command;

use kmodlab_symbolize::{disassemble_code_line, parse_code_line, Instruction};

fn texts(ins: &[Instruction]) -> Vec<(i64, &str, bool)> {
    ins.iter()
        .map(|i| (i.offset, i.text.as_str(), i.faulting))
        .collect()
}

#[test]
fn soft_lockup_spin_loop() {
    // crates/crash/tests/module_crashes.rs: an init that spins (`for (;;);`).
    let line = "[   64.324400] Code: 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 55 48 89 e5 eb fe <eb> fe 66 2e 0f 1f 84 00 00 00 00 00 90 90 90 90 90 90 90 90 90 90";
    let ins = disassemble_code_line(line).unwrap();
    let t = texts(&ins);
    let at = t.iter().position(|x| x.2).unwrap();
    assert_eq!(t[at], (0, "jmp 0x0", true));
    assert_eq!(t[at - 1], (-2, "jmp -0x2", false));
    assert_eq!(t[at - 2], (-5, "mov %rsp,%rbp", false));
    assert_eq!(t[at - 3], (-6, "push %rbp", false));
    assert_eq!(t[at - 4], (-11, "nopl 0x0(%rax,%rax,1)", false));
    assert_eq!(t[at - 5], (-15, "endbr64", false));
    assert_eq!(t[0], (-27, "nop", false));
    // objdump: `cs nopw 0x0(%rax,%rax,1)`.
    assert_eq!(t[at + 1].1, "nopw %cs:0x0(%rax,%rax,1)");
    assert_eq!(ins.iter().filter(|i| i.faulting).count(), 1);
    let shown = ins[at].to_string();
    assert!(
        shown.contains("0x0:*") && shown.contains("eb fe") && shown.ends_with("jmp 0x0"),
        "{shown}"
    );
}

#[test]
fn syscall_return_with_a_cut_last_instruction() {
    let code = "ff c3 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 44 00 00 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 8b 0d 4f 86 0d 00 f7 d8 64 89 01 48";
    let ins = disassemble_code_line(code).unwrap();
    let t = texts(&ins);
    let at = t.iter().position(|x| x.2).unwrap();
    assert_eq!(t[at - 1], (-2, "syscall", false));
    assert_eq!(t[at - 2], (-7, "mov 0x8(%rsp),%r9", false));
    assert_eq!(t[at], (0, "cmp $0xfffffffffffff001,%rax", true));
    assert_eq!(t[at + 1], (6, "jae 0x9", false));
    assert_eq!(t[at + 2], (8, "ret", false));
    assert_eq!(t[at + 3], (9, "mov 0xd864f(%rip),%rcx", false));
    assert_eq!(t[at + 4], (16, "neg %eax", false));
    assert_eq!(t[at + 5], (18, "mov %eax,%fs:(%rcx)", false));
    // The lone 0x48 at the end is a cut instruction: dropped.
    assert_eq!(t.len(), at + 6);
    // `ff c3` is the tail of an instruction (`inc %ebx` would swallow the marker alignment
    // differently): decoding starts where the instructions land on the marker.
    let first = ins[0].offset;
    assert!(first >= -42, "{first}");
}

#[test]
fn not_bytes() {
    assert!(
        disassemble_code_line("Code: Unable to access opcode bytes at 0xffffffffc0a0efeb.")
            .is_none()
    );
    assert!(disassemble_code_line("Code: Bad RIP value.").is_none());
    assert!(disassemble_code_line("Code: e0844003 e3c434ff (e5c35000)").is_none());
    assert!(parse_code_line("").is_none());
    assert_eq!(
        parse_code_line("Code: 90 (0f) 0b").unwrap(),
        (vec![0x90, 0x0f, 0x0b], Some(1))
    );
    let ins = disassemble_code_line("90 (0f) 0b 90").unwrap();
    assert_eq!(
        texts(&ins),
        vec![(-1, "nop", false), (0, "ud2", true), (2, "nop", false)]
    );
    // Without a marker: decoded from the first byte, nothing marked.
    let ins = disassemble_code_line("55 48 89 e5").unwrap();
    assert_eq!(
        texts(&ins),
        vec![(0, "push %rbp", false), (1, "mov %rsp,%rbp", false)]
    );
}

/// Instruction boundaries (start, length) from `objdump -D -b binary -m i386:x86-64` of `bytes`.
fn objdump_boundaries(bytes: &[u8], tmp: &Path) -> Option<Vec<(usize, usize)>> {
    std::fs::write(tmp, bytes).ok()?;
    let out = Command::new("objdump")
        .args(["-D", "-b", "binary", "-m", "i386:x86-64", "-w", "-z"])
        .arg(tmp)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        let Some((addr, rest)) = line.trim_start().split_once(":\t") else {
            continue;
        };
        let Ok(addr) = usize::from_str_radix(addr, 16) else {
            continue;
        };
        let mut fields = rest.split('\t');
        let hex = fields.next().unwrap_or("");
        let n = hex.split_whitespace().count();
        let mnemonic = fields.next().unwrap_or("");
        // A REX prefix followed by another prefix: objdump prints it on its own line, iced
        // decodes it as part of the instruction (where the CPU ignores it).
        let merge = v
            .last()
            .is_some_and(|&(_, _, rex): &(usize, usize, bool)| rex);
        let rex = mnemonic.starts_with("rex") && !mnemonic.trim().contains(' ');
        if merge {
            let last = v.last_mut().unwrap();
            last.1 += n;
            last.2 = rex;
        } else {
            v.push((addr, n, rex));
        }
    }
    let v = v.into_iter().map(|(a, n, _)| (a, n)).collect();
    Some(v)
}

#[test]
fn syzkaller_corpus_code_lines_agree_with_objdump() {
    let Some(dir) = kmodlab_testkit::corpus("syzkaller-linux-reports") else {
        return;
    };
    if kmodlab_testkit::require_program("objdump").is_none() {
        return;
    }
    let entries = std::fs::read_dir(&dir).unwrap();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("code-line.bin");
    let mut lines: Vec<String> = Vec::new();
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for l in text.lines() {
            if l.contains("Code: ")
                && l.contains('<')
                && !lines
                    .iter()
                    .any(|x| x.ends_with(l.split("Code: ").nth(1).unwrap_or("")))
            {
                lines.push(l.to_string());
            }
        }
    }
    lines.sort();
    let mut checked = 0;
    let mut mid_instruction = 0;
    for line in &lines {
        let Some((bytes, Some(mark))) = parse_code_line(line) else {
            continue;
        };
        let ins = disassemble_code_line(line).unwrap();
        // Contiguous, one faulting instruction exactly at the marker.
        assert!(!ins.is_empty(), "{line}");
        for w in ins.windows(2) {
            assert_eq!(w[0].offset + w[0].bytes.len() as i64, w[1].offset, "{line}");
        }
        let f: Vec<&Instruction> = ins.iter().filter(|i| i.faulting).collect();
        assert_eq!(f.len(), 1, "{line}");
        assert_eq!(f[0].offset, 0, "{line}");
        let start = (mark as i64 + ins[0].offset) as usize;
        if start > 0 {
            mid_instruction += 1;
        }
        for i in &ins {
            let at = (mark as i64 + i.offset) as usize;
            assert_eq!(i.bytes, bytes[at..at + i.bytes.len()], "{line}");
        }
        // The same boundaries as objdump from the same first byte, up to the last whole
        // instruction.
        let theirs = objdump_boundaries(&bytes[start..], &tmp)
            .unwrap_or_else(|| panic!("objdump failed on the bytes of {line}"));
        // Up to the first byte iced rejects (objdump may decode it, e.g. as a VEX prefix).
        let ours: Vec<(usize, usize)> = ins
            .iter()
            .take_while(|i| i.text != "(bad)")
            .map(|i| ((mark as i64 + i.offset) as usize - start, i.bytes.len()))
            .collect();
        // objdump goes on after a cut last instruction with whatever its bytes decode to;
        // we stop there.
        assert!(
            theirs.starts_with(&ours),
            "{line}\nours {ours:?}\ntheirs {theirs:?}"
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    eprintln!(
        "{checked} Code: lines agree with objdump ({mid_instruction} start past the first byte)"
    );
}
