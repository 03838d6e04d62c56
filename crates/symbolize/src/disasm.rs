//! x86_64 disassembly: of a report's `Code:` line, and of a function from its file.
//!
//! Instructions are printed in AT&T syntax, as `objdump -d` and the kernel's
//! `scripts/decodecode` print them (`mov %rsp,%rbp`, `movb $0x61,0x0`), with one space after the
//! mnemonic.

use std::fmt;
use std::sync::Arc;

use iced_x86::{
    Decoder, DecoderError, DecoderOptions, Formatter, GasFormatter, OpKind, SymbolResolver,
    SymbolResult,
};

use crate::debugfile::{DebugFile, LocateError};

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Where it starts: from the function's start for [`DebugFile::disassemble_function`], from
    /// the faulting byte (the one in `<>`) for [`disassemble_code_line`], so negative before it.
    pub offset: i64,
    /// The instruction's bytes.
    pub bytes: Vec<u8>,
    /// AT&T syntax, e.g. `call _printk`, `movb $0x61,0x0`; `(bad)` for bytes that do not decode.
    pub text: String,
    /// Whether this is the faulting instruction (it contains the marked offset).
    pub faulting: bool,
    /// `file:line` where the source line changes (set on the first instruction of each run of
    /// instructions from the same line), `None` otherwise and for `Code:` lines.
    pub source: Option<String>,
}

impl fmt::Display for Instruction {
    /// `  -0x3:  48 89 e5                mov %rsp,%rbp`, with `*` after the offset of the faulting
    /// instruction (as `scripts/decodecode` marks it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = if self.offset < 0 {
            format!("-{:#x}", self.offset.unsigned_abs())
        } else {
            format!("{:#x}", self.offset)
        };
        let bytes: Vec<String> = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mark = if self.faulting { "*" } else { " " };
        write!(f, "{off:>7}:{mark} {:<24} {}", bytes.join(" "), self.text)
    }
}

/// Formats a list of instructions one per line, with `file:line` lines interleaved where the
/// source line changes (like `objdump -dl`).
pub fn format_listing(instructions: &[Instruction]) -> String {
    let mut out = String::new();
    for i in instructions {
        if let Some(src) = &i.source {
            out.push_str(src);
            out.push('\n');
        }
        out.push_str(&i.to_string());
        out.push('\n');
    }
    out
}

/// Parses the bytes of a `Code:` line: the text after `Code: ` (or the whole line with it, a
/// timestamp before it is fine). Returns the bytes and the index of the marked byte (`<c7>` or
/// `(c7)`), `None` for `Code: Unable to access opcode bytes at ...`, `Bad RIP value.` and
/// anything else that is not a list of hex bytes.
pub fn parse_code_line(code: &str) -> Option<(Vec<u8>, Option<usize>)> {
    let text = match code.find("Code:") {
        Some(i) => &code[i + "Code:".len()..],
        None => code,
    };
    let mut bytes = Vec::new();
    let mut marker = None;
    for token in text.split_whitespace() {
        let (hex, marked) =
            if let Some(t) = token.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                (t, true)
            } else if let Some(t) = token.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
                (t, true)
            } else {
                (token, false)
            };
        if hex.len() != 2 {
            return None;
        }
        let b = u8::from_str_radix(hex, 16).ok()?;
        if marked {
            if marker.is_some() {
                return None;
            }
            marker = Some(bytes.len());
        }
        bytes.push(b);
    }
    (!bytes.is_empty()).then_some((bytes, marker))
}

/// Formats branch targets of a `Code:` line relative to the faulting byte, like the
/// instructions' offsets.
struct RelativeResolver {
    /// Address given to the faulting byte.
    base: u64,
}

impl SymbolResolver for RelativeResolver {
    fn symbol(
        &mut self,
        instruction: &iced_x86::Instruction,
        operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        if !matches!(
            instruction.op_kind(operand),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ) {
            return None;
        }
        let rel = address.wrapping_sub(self.base) as i64;
        let text = if rel < 0 {
            format!("-{:#x}", rel.unsigned_abs())
        } else {
            format!("{rel:#x}")
        };
        Some(SymbolResult::with_string(address, text))
    }
}

fn gas(resolver: Option<Box<dyn SymbolResolver>>) -> GasFormatter {
    let mut f = GasFormatter::with_options(resolver, None);
    let o = f.options_mut();
    // `0x10(%rip)`, or `symbol(%rip)` when the target has a name.
    o.set_rip_relative_addresses(true);
    o.set_show_branch_size(false);
    o.set_branch_leading_zeros(false);
    o.set_uppercase_hex(false);
    o.set_space_after_operand_separator(false);
    // As objdump prints them: `0x8(%rsp)`, `0x0(%rax,%rax,1)`.
    o.set_small_hex_numbers_in_decimal(false);
    o.set_show_zero_displacements(true);
    o.set_show_useless_prefixes(true);
    f
}

/// objdump writes the scale of an index register always: `(%rax,%rax,1)`.
fn objdump_scale(text: String) -> String {
    if !text.contains(',') || !text.contains('(') {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 2);
    let mut rest = text.as_str();
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        out.push_str(&rest[..close]);
        let parts: Vec<&str> = inner.split(',').collect();
        if parts.len() == 2 && parts[1].starts_with('%') {
            out.push_str(",1");
        }
        out.push(')');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

fn format(formatter: &mut GasFormatter, ins: &iced_x86::Instruction) -> String {
    let mut text = String::new();
    formatter.format(ins, &mut text);
    objdump_scale(text)
}

/// Decodes `bytes` from `start` as long as whole, valid instructions fit before `end`; returns
/// the instructions and where decoding stopped.
fn decode_run(
    bytes: &[u8],
    start: usize,
    end: usize,
    base_ip: u64,
) -> (Vec<iced_x86::Instruction>, usize, bool) {
    let slice = &bytes[start..end];
    let mut decoder = Decoder::with_ip(
        64,
        slice,
        base_ip.wrapping_add(start as u64),
        DecoderOptions::NONE,
    );
    let mut out = Vec::new();
    let mut ins = iced_x86::Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            return (out, start + decoder.position(), false);
        }
        out.push(ins);
    }
    (out, end, true)
}

/// Disassembles a `Code:` line (the text after `Code: `, or the whole line), marking the
/// faulting instruction.
///
/// The bytes before the marker may begin in the middle of an instruction: like the kernel's
/// `scripts/decodecode`, decoding starts at the first byte from which the instructions end
/// exactly at the marked byte. The last instruction is dropped when the line cuts it short.
/// Offsets are relative to the marked byte (negative before it); branch targets are printed in
/// the same terms. `None` when the line holds no bytes (`Unable to access opcode bytes`).
pub fn disassemble_code_line(code: &str) -> Option<Vec<Instruction>> {
    let (bytes, marker) = parse_code_line(code)?;
    let mark = marker.unwrap_or(0);
    // An address with room below for the bytes before the marker.
    let base_ip: u64 = 0x1000_0000;
    let ip0 = base_ip - mark as u64;
    let mut prefix = Vec::new();
    for start in 0..=mark {
        let (ins, stop, ok) = decode_run(&bytes, start, mark, ip0);
        if ok && stop == mark {
            prefix = ins;
            break;
        }
    }
    let mut formatter = gas(Some(Box::new(RelativeResolver { base: base_ip })));
    let mut out = Vec::new();
    let mut push = |ins: &iced_x86::Instruction, out: &mut Vec<Instruction>| {
        let start = (ins.ip() - ip0) as usize;
        let text = format(&mut formatter, ins);
        out.push(Instruction {
            offset: start as i64 - mark as i64,
            bytes: bytes[start..start + ins.len()].to_vec(),
            text,
            faulting: marker.is_some() && start == mark,
            source: None,
        });
    };
    for ins in &prefix {
        push(ins, &mut out);
    }
    // From the marker to the end.
    let mut decoder = Decoder::with_ip(64, &bytes[mark..], base_ip, DecoderOptions::NONE);
    let mut ins = iced_x86::Instruction::default();
    while decoder.can_decode() {
        let pos = mark + decoder.position();
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            if decoder.last_error() == DecoderError::NoMoreBytes {
                break;
            }
            out.push(Instruction {
                offset: pos as i64 - mark as i64,
                bytes: vec![bytes[pos]],
                text: "(bad)".into(),
                faulting: marker.is_some() && pos == mark,
                source: None,
            });
            // Go on after the bad byte.
            if decoder.set_position(pos + 1 - mark).is_err() {
                break;
            }
            decoder.set_ip(base_ip + (pos + 1 - mark) as u64);
            continue;
        }
        push(&ins, &mut out);
    }
    Some(out)
}

/// Names addresses of a file's symbols (and of its undefined symbols) for the formatter.
pub(crate) struct FileResolver {
    /// `(address, size, name)`, sorted by address; for equal addresses the preferred name first.
    symbols: Arc<Vec<(u64, u64, String)>>,
}

impl FileResolver {
    pub(crate) fn new(file: &DebugFile) -> FileResolver {
        FileResolver {
            symbols: file
                .resolver
                .get_or_init(|| FileResolver::build(file))
                .clone(),
        }
    }

    fn build(file: &DebugFile) -> Arc<Vec<(u64, u64, String)>> {
        let image = &file.image;
        let mut symbols: Vec<(u64, u64, u8, usize, String)> = Vec::new();
        for (i, s) in image.symbols.iter().enumerate() {
            let rank = if s.name.starts_with("__pfx_") {
                3
            } else if s.func {
                0
            } else {
                1
            };
            symbols.push((s.addr, s.size, rank, i, s.display.clone()));
        }
        for (addr, name) in &image.externs {
            symbols.push((*addr, 0, 0, 0, crate::elf::demangle(name)));
        }
        if image.relocatable {
            // Section symbols as a last resort: `.rodata.str1.1+0xf`.
            for (i, s) in image.sections.iter().enumerate() {
                if s.region != crate::elf::Region::None && s.size != 0 {
                    symbols.push((s.addr, s.size, 4, i, s.name.clone()));
                }
            }
        }
        symbols.sort_by_key(|a| (a.0, a.2, a.3));
        Arc::new(
            symbols
                .into_iter()
                .map(|(a, s, _, _, n)| (a, s, n))
                .collect(),
        )
    }

    fn lookup(&self, address: u64) -> Option<(u64, &str)> {
        let syms = &self.symbols;
        let mut i = syms.partition_point(|s| s.0 <= address);
        // Walk down the groups of symbols at equal addresses; in a group, the preferred name
        // comes first.
        for _ in 0..64 {
            if i == 0 {
                break;
            }
            let a = syms[i - 1].0;
            let first = syms.partition_point(|s| s.0 < a);
            if let Some(s) = syms[first..i]
                .iter()
                .find(|s| s.0 == address || address < s.0.saturating_add(s.1))
            {
                return Some((s.0, s.2.as_str()));
            }
            i = first;
        }
        None
    }
}

impl SymbolResolver for FileResolver {
    fn symbol(
        &mut self,
        _instruction: &iced_x86::Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        let (a, name) = self.lookup(address)?;
        Some(SymbolResult::with_string(a, name.to_string()))
    }
}

impl DebugFile {
    /// Disassembles a whole function from the file, its call targets and referenced symbols
    /// named (`call _printk`: in a `.ko` these are relocations, resolved here), with the source
    /// `file:line` on the first instruction of each line (see [`Instruction::source`]).
    /// `mark` is an offset in the function: the instruction that contains it is marked
    /// faulting.
    pub fn disassemble_function(
        &self,
        function: &str,
        mark: Option<u64>,
    ) -> Result<Vec<Instruction>, LocateError> {
        let sym = self.symbol(function, None)?;
        let not_code = || LocateError::NotCode {
            function: function.to_string(),
        };
        if !self.image.x86_64 {
            return Err(not_code());
        }
        let sect = sym
            .section
            .and_then(|i| self.image.sections.get(i))
            .ok_or_else(not_code)?;
        let data = sect.bytes(&self.image.data).ok_or_else(not_code)?;
        let size = if sym.size != 0 {
            sym.size
        } else {
            sym.kallsyms_size
        };
        let start = sym.addr.wrapping_sub(sect.addr);
        let end = start.saturating_add(size).min(data.len() as u64);
        if start >= end {
            return Err(not_code());
        }
        let code = &data[start as usize..end as usize];
        // The bytes as in the file (unrelocated), for display.
        let shown = sym
            .section
            .and_then(|i| self.image.original_code.get(&i))
            .and_then(|b| b.get(start as usize..end as usize))
            .unwrap_or(code);
        let mut formatter = gas(Some(Box::new(FileResolver::new(self))));
        let mut decoder = Decoder::with_ip(64, code, sym.addr, DecoderOptions::NONE);
        let mut ins = iced_x86::Instruction::default();
        let mut out = Vec::new();
        let mut last_source: Option<String> = None;
        while decoder.can_decode() {
            let pos = decoder.position();
            decoder.decode_out(&mut ins);
            let (len, text) = if ins.is_invalid() {
                // Go on after the bad byte.
                if decoder.set_position(pos + 1).is_err() {
                    break;
                }
                decoder.set_ip(sym.addr.wrapping_add(pos as u64 + 1));
                (1, "(bad)".to_string())
            } else {
                (ins.len(), format(&mut formatter, &ins))
            };
            let source = self.line_at(sym.addr.wrapping_add(pos as u64));
            let changed = source.is_some() && source != last_source;
            if source.is_some() {
                last_source = source.clone();
            }
            out.push(Instruction {
                offset: pos as i64,
                bytes: shown[pos..pos + len].to_vec(),
                text,
                faulting: mark.is_some_and(|m| m >= pos as u64 && m < (pos + len) as u64),
                source: if changed { source } else { None },
            });
        }
        Ok(out)
    }

    /// Checks that `function+offset` can be an address in the running code of this very
    /// build: the function's size in the log (`log_size`) is the file's, the offset is within
    /// the function, and it is the start of an instruction (every address of running code is:
    /// the faulting instruction, or the one after a call). Any other answer means the file is
    /// not the build that crashed ([`LocateError::StaleBuild`], [`LocateError::OutOfRange`],
    /// [`LocateError::NotAtInstruction`]). Only the size is checked for code other than x86_64.
    ///
    /// Use it for addresses known to be real (the RIP, reliable call-trace frames), not for the
    /// unwinder's `? ` guesses, which may point anywhere.
    pub fn check_address(
        &self,
        function: &str,
        offset: u64,
        log_size: Option<u64>,
    ) -> Result<(), LocateError> {
        let sym = self.symbol(function, log_size)?;
        if sym.size != 0 && offset > sym.size {
            return Err(LocateError::OutOfRange {
                function: function.to_string(),
                offset,
                size: sym.size,
                path: self.path().to_path_buf(),
            });
        }
        if !self.image.x86_64 || sym.size == 0 {
            return Ok(());
        }
        let Some(code) = sym
            .section
            .and_then(|i| self.image.sections.get(i))
            .and_then(|s| {
                let data = s.bytes(&self.image.data)?;
                let start = usize::try_from(sym.addr.checked_sub(s.addr)?).ok()?;
                data.get(start..start.checked_add(usize::try_from(sym.size).ok()?)?)
            })
        else {
            return Ok(());
        };
        let mut decoder = Decoder::with_ip(64, code, sym.addr, DecoderOptions::NONE);
        let mut ins = iced_x86::Instruction::default();
        while decoder.can_decode() && (decoder.position() as u64) < offset {
            decoder.decode_out(&mut ins);
            if ins.is_invalid() {
                // Bytes we cannot decode: no verdict.
                return Ok(());
            }
        }
        if decoder.position() as u64 == offset || offset == sym.size {
            Ok(())
        } else {
            Err(LocateError::NotAtInstruction {
                function: function.to_string(),
                offset,
                path: self.path().to_path_buf(),
            })
        }
    }

    /// Disassembles the function around `offset`: the whole function when it has at most
    /// `2 * context + 1` instructions, else `context` instructions on either side of the one at
    /// `offset` (which is marked faulting). The first instruction returned always carries its
    /// source line.
    pub fn disassemble_around(
        &self,
        function: &str,
        offset: u64,
        context: usize,
    ) -> Result<Vec<Instruction>, LocateError> {
        let all = self.disassemble_function(function, Some(offset))?;
        if all.len() <= 2 * context + 1 {
            return Ok(all);
        }
        let at = all.iter().position(|i| i.faulting).unwrap_or(all.len() - 1);
        let from = at.saturating_sub(context);
        let to = (at + context + 1).min(all.len());
        let mut window = all[from..to].to_vec();
        if window[0].source.is_none() {
            // The line that was in force at the window's first instruction.
            window[0].source = all[..=from].iter().rev().find_map(|i| i.source.clone());
        }
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_registers_get_their_scale() {
        assert_eq!(
            objdump_scale("nopl 0x0(%rax,%rax)".into()),
            "nopl 0x0(%rax,%rax,1)"
        );
        assert_eq!(
            objdump_scale("mov 0x8(%rsp),%r9".into()),
            "mov 0x8(%rsp),%r9"
        );
        assert_eq!(
            objdump_scale("lea 0x15(%rbx,%rbx,2),%edx".into()),
            "lea 0x15(%rbx,%rbx,2),%edx"
        );
        assert_eq!(
            objdump_scale("mov (,%rax,8),%rdx".into()),
            "mov (,%rax,8),%rdx"
        );
        assert_eq!(
            objdump_scale("mov %eax,%fs:(%rcx)".into()),
            "mov %eax,%fs:(%rcx)"
        );
    }

    #[test]
    fn display_marks_the_faulting_instruction() {
        let i = Instruction {
            offset: -3,
            bytes: vec![0x48, 0x89, 0xe5],
            text: "mov %rsp,%rbp".into(),
            faulting: false,
            source: Some("x.c:3".into()),
        };
        assert_eq!(
            i.to_string(),
            "   -0x3:  48 89 e5                 mov %rsp,%rbp"
        );
        let f = Instruction {
            offset: 0,
            faulting: true,
            ..i.clone()
        };
        assert!(f.to_string().starts_with("    0x0:* 48 89 e5"));
        assert_eq!(
            format_listing(&[i]),
            "x.c:3\n   -0x3:  48 89 e5                 mov %rsp,%rbp\n"
        );
    }
}
