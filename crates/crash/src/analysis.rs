//! What a symbolizer adds to a parsed report: notes, the guilty source line with its context,
//! and a disassembly. Plain data: the parser leaves it empty, `kmodlab-symbolize` fills it.

use serde::{Deserialize, Serialize};

/// A few source lines around the line a report points at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceContext {
    /// `file:line` as shown in the report.
    pub source: String,
    /// The file the lines were read from.
    pub path: String,
    /// Number of the first line in `lines`.
    pub first_line: u32,
    /// The line the report points at.
    pub line: u32,
    /// The lines, without their line breaks.
    pub lines: Vec<String>,
}

/// Disassembled code around the faulting instruction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disassembly {
    /// Where the bytes came from: `code-line` (the report's `Code:` bytes) or `module` (the
    /// function read from the module file).
    pub origin: String,
    /// The function disassembled, for `module`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The instructions in address order.
    pub instructions: Vec<DisasmLine>,
}

/// One disassembled instruction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisasmLine {
    /// Offset from the function start (`module`) or from the faulting byte (`code-line`).
    pub offset: i64,
    /// The instruction bytes in hex, space separated.
    pub bytes: String,
    /// The instruction as objdump prints it.
    pub text: String,
    /// Whether this is the faulting instruction (or, for a return address, the call).
    pub faulting: bool,
    /// `file:line` when it changes at this instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}
