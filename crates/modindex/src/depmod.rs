//! depmod's computation, without I/O: from the modules found and what they export and need, to
//! the contents of every file depmod writes, as kmod 30 computes them.
//!
//! The steps, in kmod's order:
//!
//! 1. [`module_order`]: the modules in kmod's order — those `modules.order` lists in its order,
//!    then the others in the iteration order of kmod's module table.
//! 2. [`resolve`]: the symbol table (kernel symbols from `System.map` or `Module.symvers`, then
//!    every module's exports: the last exporter of a name owns it), each module's
//!    dependencies, a topological sort, and the full sorted dependency list of each module. A
//!    dependency cycle is an error with kmod's cycle report.
//! 3. The writers on [`Resolved`] and the `modules.builtin*` writers: the bytes of each file.

use std::collections::HashMap;

use crate::names::alias_normalize;
use crate::order::{sort_in_hash_order, MODULE_BUCKETS, SYMBOL_BUCKETS};
use crate::trie::{IndexBuilder, NonAsciiError};
use crate::{Diagnostic, Level};

/// The files depmod writes, in the order kmod 30 writes them.
pub const OUTPUT_FILES: [&str; 10] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// A symbol a module exports, or a kernel symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Its name.
    pub name: Vec<u8>,
    /// Its CRC (0 when unknown).
    pub crc: u64,
}

/// A symbol a module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Its name.
    pub name: Vec<u8>,
    /// The CRC the module was built against (0 when unknown).
    pub crc: u64,
    /// A weak reference: never warned about.
    pub weak: bool,
}

/// One module as depmod sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    /// The module name (from the file name, `-` made `_`).
    pub name: Vec<u8>,
    /// The file's path as found (base directory included).
    pub path: Vec<u8>,
    /// The path relative to the module directory, when the file is inside it.
    pub relpath: Option<Vec<u8>>,
    /// The symbols it exports, in the order read.
    pub exports: Vec<Symbol>,
    /// The symbols it needs, in the order read.
    pub needs: Vec<Need>,
    /// Its `.modinfo` entries that depmod writes out (`alias`, `softdep`), in order.
    pub modinfo: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Module {
    /// The path written in `modules.dep`: relative when the module is inside the module
    /// directory, else as found.
    pub fn shown_path(&self) -> &[u8] {
        self.relpath.as_deref().unwrap_or(&self.path)
    }

    fn values<'m>(&'m self, key: &'m [u8]) -> impl Iterator<Item = &'m [u8]> + 'm {
        self.modinfo
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// Options that change the computation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `-P`: a character some architectures put before every symbol name, ignored (0: none).
    pub symbol_prefix: u8,
    /// `-E`: compare the CRCs of needed symbols with the kernel's.
    pub check_symvers: bool,
    /// `-e`: warn about needed symbols nobody provides (and CRC mismatches).
    pub print_unknown: bool,
    /// `-w`: warn about duplicate index entries.
    pub warn_dups: bool,
    /// `-v`: list, on stdout, which module provides each symbol a module needs.
    pub verbose: bool,
}

fn diag(level: Level, message: String) -> Diagnostic {
    Diagnostic::new(level, message)
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// `fgets` with a buffer of `size` bytes: pieces of at most `size - 1` bytes, each ending
/// after a newline unless it is the last piece or a full buffer.
fn fgets_pieces(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let max = rest.len().min(size - 1);
        let len = rest[..max]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(max, |nl| nl + 1);
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        Some(piece)
    })
}

/// A C string view: up to the first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |nul| &bytes[..nul])
}

/// kmod's module order: the permutation of `modules` (given as `(name, uncompressed relative
/// path)`) in which depmod processes them and writes `modules.dep`.
///
/// The modules are first in the iteration order of kmod's 512-bucket module table. Then, if
/// `modules_order` (the contents of `modules.order`) is given, the modules it lists move to the
/// front in its order (a module listed twice takes its last place), the others keep their
/// relative order. A line of `modules.order` without its newline makes kmod give up on the
/// file (an error naming `order_path`), keeping the table order.
pub fn module_order(
    modules: &[(&[u8], Option<&[u8]>)],
    modules_order: Option<&[u8]>,
    order_path: &str,
) -> (Vec<usize>, Vec<Diagnostic>) {
    let mut order: Vec<usize> = (0..modules.len()).collect();
    sort_in_hash_order(&mut order, MODULE_BUCKETS, |&i| modules[i].0);
    let mut diagnostics = Vec::new();
    let Some(contents) = modules_order else {
        return (order, diagnostics);
    };
    const PATH_MAX: usize = 4096;
    let mut lines = 0i64;
    for piece in fgets_pieces(contents, PATH_MAX) {
        lines += 1;
        let line = c_str(piece);
        if !line.is_empty() && line.last() != Some(&b'\n') {
            diagnostics.push(diag(
                Level::Error,
                format!("{order_path}:{lines} corrupted line misses '\\n'\n"),
            ));
            return (order, diagnostics);
        }
    }
    // kmod: total = lines + 1; a listed module gets line - total (negative), others 1.
    let total = lines + 1;
    let by_path: HashMap<&[u8], usize> = modules
        .iter()
        .enumerate()
        .filter_map(|(i, (_, uncrelpath))| uncrelpath.map(|p| (p, i)))
        .collect();
    let mut sort_idx = vec![1i64; modules.len()];
    for (idx, piece) in fgets_pieces(contents, PATH_MAX).enumerate() {
        let line = c_str(piece);
        let Some((_, line)) = line.split_last() else {
            continue;
        };
        if let Some(&i) = by_path.get(line) {
            sort_idx[i] = idx as i64 + 1 - total;
        }
    }
    // A stable sort, as glibc's merge sort qsort is.
    order.sort_by_key(|&i| sort_idx[i]);
    (order, diagnostics)
}

/// Kernel symbols from a `System.map` (`-F`): the `__ksymtab_NAME` entries, names without
/// `__ksymtab_` (and without the symbol prefix). Lines without two spaces are reported as kmod
/// reports them.
pub fn parse_system_map(
    contents: &[u8],
    filename: &str,
    symbol_prefix: u8,
) -> (Vec<Symbol>, Vec<Diagnostic>) {
    const KSYMTAB: &[u8] = b"__ksymtab_";
    let mut symbols = Vec::new();
    let mut diagnostics = Vec::new();
    for (n, piece) in fgets_pieces(contents, 10240).enumerate() {
        let line = c_str(piece);
        let third = line.iter().position(|&b| b == b' ').and_then(|first| {
            let rest = &line[first + 1..];
            rest.iter()
                .position(|&b| b == b' ')
                .map(|second| &rest[second + 1..])
        });
        let Some(mut name) = third else {
            diagnostics.push(diag(
                Level::Error,
                format!("{filename}:{}: invalid line: {}\n", n + 1, lossy(line)),
            ));
            continue;
        };
        if symbol_prefix != 0 && name.first() == Some(&symbol_prefix) {
            name = &name[1..];
        }
        let Some(name) = name.strip_prefix(KSYMTAB) else {
            continue;
        };
        let name = match name.iter().position(|&b| b == b'\n') {
            Some(nl) => &name[..nl],
            None => name,
        };
        symbols.push(Symbol {
            name: name.to_vec(),
            crc: 0,
        });
    }
    (symbols, diagnostics)
}

/// `strtoull(s, &end, 16)`: the value (saturated) and whether the whole string was used, and
/// whether it overflowed.
fn strtoull_hex(s: &[u8]) -> (u64, bool, bool) {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|c| c.is_ascii_whitespace() || *c == 0x0b)
    {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        match value
            .checked_mul(16)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, s.is_empty(), false);
    }
    if overflow {
        value = u64::MAX;
    } else if negative {
        value = value.wrapping_neg();
    }
    (value, i == s.len(), overflow)
}

/// Kernel symbols from a `Module.symvers` (`-E`): the symbols `vmlinux` exports, with their
/// CRCs.
pub fn parse_symvers(
    contents: &[u8],
    filename: &str,
    symbol_prefix: u8,
) -> (Vec<Symbol>, Vec<Diagnostic>) {
    let mut symbols = Vec::new();
    let mut diagnostics = Vec::new();
    for (n, piece) in fgets_pieces(contents, 10240).enumerate() {
        let line = c_str(piece);
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let (Some(ver), Some(sym), Some(place)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if place != b"vmlinux" {
            continue;
        }
        let (crc, whole, overflow) = strtoull_hex(ver);
        if !whole {
            // kmod prints errno here, which strtoull leaves alone unless it overflows: what
            // kmod's start-up left in it, ENOENT.
            let errno = if overflow {
                "Numerical result out of range"
            } else {
                "No such file or directory"
            };
            diagnostics.push(diag(
                Level::Error,
                format!(
                    "{filename}:{} Invalid symbol version {}: {errno}\n",
                    n + 1,
                    lossy(ver)
                ),
            ));
            continue;
        }
        let name = match sym.split_first() {
            Some((&first, rest)) if symbol_prefix != 0 && first == symbol_prefix => rest,
            _ => sym,
        };
        symbols.push(Symbol {
            name: name.to_vec(),
            crc,
        });
    }
    (symbols, diagnostics)
}

/// An entry of the symbol table: who provides the symbol (`None`: the kernel) and its CRC.
#[derive(Debug, Clone, Copy)]
struct Provider {
    owner: Option<u32>,
    crc: u64,
}

/// Everything depmod computed, ready to be written.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The modules, in order; a module's index is the priority of its index entries.
    pub modules: Vec<Module>,
    /// Each module's direct and indirect dependencies, as indexes into `modules`, in the order
    /// `modules.dep` lists them.
    pub dependencies: Vec<Vec<u32>>,
    /// The symbols modules export, with the index of the module that provides each, in the
    /// order of kmod's symbol table.
    pub symbols: Vec<(Vec<u8>, u32)>,
    /// Warnings about unknown symbols and CRC mismatches (with `-e`), in kmod's order.
    pub diagnostics: Vec<Diagnostic>,
    /// With `-v`: the `PATH needs "SYMBOL": PROVIDER` lines kmod prints on stdout.
    pub verbose_lines: Vec<String>,
}

/// Why [`resolve`] produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The dependencies form cycles: kmod's report (`Cycle detected: a -> b -> a` lines and
    /// `Found N modules in dependency cycles!`), after the resolution's own warnings. kmod then
    /// writes nothing and exits with status 1. (Where kmod 30 would walk the cycles forever,
    /// the report stops with a line saying so.)
    Cycles(Vec<Diagnostic>),
    /// The cycles are tangled in a way that makes kmod 30 fail an assertion while reporting
    /// them (`is < stack_size` in `depmod_report_cycles_from_root`) and abort; the messages it
    /// printed before that.
    CycleReportAborted(Vec<Diagnostic>),
}

/// kmod's `depmod_symbol_add` name: the prefix character removed unless already skipped.
fn strip_prefix(name: &[u8], prefix: u8) -> &[u8] {
    match name.split_first() {
        Some((&first, rest)) if first == prefix => rest,
        _ => name,
    }
}

/// Resolves the dependencies of `modules` (in [`module_order`]), with the kernel's own symbols
/// when `-F` or `-E` gave them (`kernel_symbols`; kmod then also knows `__this_module`,
/// `_GLOBAL_OFFSET_TABLE_` and `TOC.`).
pub fn resolve(
    modules: Vec<Module>,
    kernel_symbols: Option<Vec<Symbol>>,
    options: &Options,
) -> Result<Resolved, ResolveError> {
    let prefix = options.symbol_prefix;
    let mut table: HashMap<Vec<u8>, Provider> = HashMap::new();
    if let Some(kernel) = kernel_symbols {
        for symbol in kernel {
            table.insert(
                symbol.name,
                Provider {
                    owner: None,
                    crc: symbol.crc,
                },
            );
        }
        for fake in [&b"__this_module"[..], b"_GLOBAL_OFFSET_TABLE_"] {
            table.insert(
                fake.to_vec(),
                Provider {
                    owner: None,
                    crc: 0,
                },
            );
        }
        // kmod looks `TOC.` up with its lookup rules (a leading '.' and prefix ignored).
        if find(&table, b"TOC.", prefix).is_none() {
            table.insert(
                b"TOC.".to_vec(),
                Provider {
                    owner: None,
                    crc: 0,
                },
            );
        }
    }
    for (index, module) in modules.iter().enumerate() {
        for symbol in &module.exports {
            let name = if prefix != 0 {
                strip_prefix(&symbol.name, prefix)
            } else {
                &symbol.name[..]
            };
            table.insert(
                name.to_vec(),
                Provider {
                    owner: Some(index as u32),
                    crc: symbol.crc,
                },
            );
        }
    }

    // Direct dependencies, in the order their first symbol was found.
    let n = modules.len();
    let mut direct: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut users = vec![0u32; n];
    let mut diagnostics = Vec::new();
    let mut verbose_lines = Vec::new();
    for (index, module) in modules.iter().enumerate() {
        for need in &module.needs {
            let Some((symbol_name, provider)) = find(&table, &need.name, prefix) else {
                if options.print_unknown && !need.weak {
                    diagnostics.push(diag(
                        Level::Warning,
                        format!(
                            "{} needs unknown symbol {}\n",
                            lossy(&module.path),
                            lossy(&need.name)
                        ),
                    ));
                }
                continue;
            };
            if options.check_symvers
                && provider.crc != need.crc
                && !need.weak
                && options.print_unknown
            {
                diagnostics.push(diag(
                    Level::Warning,
                    format!(
                        "{} disagrees about version of symbol {}\n",
                        lossy(&module.path),
                        lossy(&need.name)
                    ),
                ));
            }
            let Some(owner) = provider.owner else {
                continue;
            };
            if direct[index].contains(&owner) {
                continue;
            }
            direct[index].push(owner);
            users[owner as usize] += 1;
            if options.verbose {
                verbose_lines.push(format!(
                    "{} needs \"{}\": {}\n",
                    lossy(&module.path),
                    lossy(symbol_name),
                    lossy(&modules[owner as usize].path)
                ));
            }
        }
    }

    // Topological sort, modules nobody needs first (kmod's stack order).
    let mut sort_index = vec![u32::MAX; n];
    let mut remaining = users.clone();
    let mut roots: Vec<u32> = (0..n as u32)
        .filter(|&i| remaining[i as usize] == 0)
        .collect();
    let mut sorted = 0u32;
    while let Some(src) = roots.pop() {
        sort_index[src as usize] = sorted;
        sorted += 1;
        for &dst in &direct[src as usize] {
            remaining[dst as usize] -= 1;
            if remaining[dst as usize] == 0 {
                roots.push(dst);
            }
        }
    }
    if (sorted as usize) < n {
        return Err(report_cycles(&modules, &direct, &remaining, diagnostics));
    }

    // Every module's dependencies, direct and indirect, by sort index.
    let mut dependencies = Vec::with_capacity(n);
    let mut seen = vec![u32::MAX; n];
    let mut stack = Vec::new();
    for index in 0..n {
        let mut all = Vec::new();
        stack.extend(direct[index].iter().copied());
        while let Some(dep) = stack.pop() {
            if seen[dep as usize] == index as u32 {
                continue;
            }
            seen[dep as usize] = index as u32;
            all.push(dep);
            stack.extend(direct[dep as usize].iter().copied());
        }
        all.sort_by_key(|&d| sort_index[d as usize]);
        dependencies.push(all);
    }

    // The symbols modules provide, in the order of kmod's 2048-bucket table.
    let mut keyed: Vec<(u32, Vec<u8>, u32)> = table
        .into_iter()
        .filter_map(|(name, provider)| {
            let owner = provider.owner?;
            Some((crate::order::bucket(&name, SYMBOL_BUCKETS), name, owner))
        })
        .collect();
    keyed.sort_unstable();
    let symbols = keyed
        .into_iter()
        .map(|(_, name, owner)| (name, owner))
        .collect();

    Ok(Resolved {
        modules,
        dependencies,
        symbols,
        diagnostics,
        verbose_lines,
    })
}

/// kmod's `depmod_symbol_find`: a leading `.` (PPC64) and then the prefix character are
/// ignored.
fn find<'t>(
    table: &'t HashMap<Vec<u8>, Provider>,
    name: &[u8],
    prefix: u8,
) -> Option<(&'t [u8], Provider)> {
    let mut name = name;
    if name.first() == Some(&b'.') {
        name = &name[1..];
    }
    if prefix != 0 {
        name = strip_prefix(name, prefix);
    }
    table
        .get_key_value(name)
        .map(|(k, provider)| (k.as_slice(), *provider))
}

/// kmod's `depmod_report_cycles`, step for step: the same walks give the same lines.
fn report_cycles(
    modules: &[Module],
    direct: &[Vec<u32>],
    users: &[u32],
    mut diagnostics: Vec<Diagnostic>,
) -> ResolveError {
    let mut roots: Vec<u32> = (0..modules.len() as u32)
        .filter(|&i| users[i as usize] > 0)
        .collect();
    let stack_size = roots.len();
    let mut visited = vec![false; modules.len()];
    let mut in_loops: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    // kmod's `kmod_list_remove_data` on its circular list: the element after the removed one
    // becomes the head.
    let remove = |roots: &mut Vec<u32>, m: u32| {
        if let Some(at) = roots.iter().position(|&r| r == m) {
            roots.remove(at);
            roots.rotate_left(at);
        }
    };
    // kmod's walk does not stop at modules it has seen: on a cycle that does not go through
    // the root it started from it goes round and round, until its stack outgrows the number
    // of roots (an assertion fails: kmod aborts, as here) or forever, printing ever longer
    // lines if the round passes through the root. Here the walk stops after a million steps,
    // four million vertices or a MiB of messages, with a line saying so.
    let mut steps_left: u32 = 1_000_000;
    let mut bytes_left: usize = 1 << 20;
    let forever = |mut diagnostics: Vec<Diagnostic>| {
        diagnostics.push(diag(
            Level::Error,
            "Cycle report stopped: kmod 30 would walk these cycles forever\n".into(),
        ));
        ResolveError::Cycles(diagnostics)
    };
    while !roots.is_empty() {
        let root = roots.remove(0);
        // Vertices: (module, parent vertex).
        let mut vertices: Vec<(u32, Option<usize>)> = vec![(root, None)];
        let mut stack = vec![0usize];
        while let Some(vertex) = stack.pop() {
            steps_left = steps_left.saturating_sub(1);
            if steps_left == 0 || bytes_left == 0 || vertices.len() > 4_000_000 {
                return forever(diagnostics);
            }
            let m = vertices[vertex].0;
            if visited[m as usize] && m == root {
                let mut chain = Vec::new();
                let mut v = vertices[vertex].1;
                while let Some(parent) = v {
                    let module = vertices[parent].0;
                    chain.push(module);
                    in_loops.insert(&modules[module as usize].name);
                    v = vertices[parent].1;
                }
                let mut line = String::new();
                for &module in chain.iter().rev() {
                    line.push_str(&lossy(&modules[module as usize].name));
                    line.push_str(" -> ");
                    remove(&mut roots, module);
                }
                line.push_str(&lossy(&modules[m as usize].name));
                bytes_left = bytes_left.saturating_sub(line.len());
                diagnostics.push(diag(Level::Error, format!("Cycle detected: {line}\n")));
                continue;
            }
            visited[m as usize] = true;
            if direct[m as usize].is_empty() {
                remove(&mut roots, m);
                continue;
            }
            for &dep in &direct[m as usize] {
                if stack.len() >= stack_size {
                    return ResolveError::CycleReportAborted(diagnostics);
                }
                vertices.push((dep, Some(vertex)));
                stack.push(vertices.len() - 1);
            }
        }
    }
    diagnostics.push(diag(
        Level::Error,
        format!("Found {} modules in dependency cycles!\n", in_loops.len()),
    ));
    ResolveError::Cycles(diagnostics)
}

/// A writer's result: the file's bytes and the messages kmod prints while writing it.
pub type Written = (Vec<u8>, Vec<Diagnostic>);

impl Resolved {
    /// The `modules.dep` line of module `index`, without the newline: `PATH: DEP DEP...`
    /// (`PATH:` when it has no dependencies).
    fn dep_line(&self, index: usize) -> Vec<u8> {
        let mut line = self.modules[index].shown_path().to_vec();
        line.push(b':');
        for &dep in &self.dependencies[index] {
            line.push(b' ');
            line.extend_from_slice(self.modules[dep as usize].shown_path());
        }
        line
    }

    /// `modules.dep`.
    pub fn modules_dep(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for index in 0..self.modules.len() {
            out.extend_from_slice(&self.dep_line(index));
            out.push(b'\n');
        }
        out
    }

    /// `modules.dep.bin`: module name → its `modules.dep` line.
    pub fn modules_dep_bin(&self, warn_dups: bool) -> Result<Written, NonAsciiError> {
        let mut index = IndexBuilder::new();
        let mut diagnostics = Vec::new();
        for (i, module) in self.modules.iter().enumerate() {
            let line = self.dep_line(i);
            if index.insert(&module.name, &line, i as u32)? && warn_dups {
                diagnostics.push(diag(
                    Level::Warning,
                    format!("duplicate module deps:\n{}\n", lossy(&line)),
                ));
            }
        }
        Ok((index.write(), diagnostics))
    }

    /// `modules.alias`.
    pub fn modules_alias(&self) -> Vec<u8> {
        let mut out = b"# Aliases extracted from modules themselves.\n".to_vec();
        for module in &self.modules {
            for alias in module.values(b"alias") {
                out.extend_from_slice(b"alias ");
                out.extend_from_slice(alias);
                out.push(b' ');
                out.extend_from_slice(&module.name);
                out.push(b'\n');
            }
        }
        out
    }

    /// `modules.alias.bin`: normalised alias → module name.
    pub fn modules_alias_bin(&self, warn_dups: bool) -> Result<Written, NonAsciiError> {
        let mut index = IndexBuilder::new();
        let mut diagnostics = Vec::new();
        for (i, module) in self.modules.iter().enumerate() {
            for alias in module.values(b"alias") {
                let Some(normalized) = alias_normalize(alias) else {
                    diagnostics.push(diag(
                        Level::Warning,
                        format!("Unmatched bracket in {}\n", lossy(alias)),
                    ));
                    continue;
                };
                if index.insert(&normalized, &module.name, i as u32)? && warn_dups {
                    diagnostics.push(diag(
                        Level::Warning,
                        format!(
                            "duplicate module alias:\n{} {}\n",
                            lossy(&normalized),
                            lossy(&module.name)
                        ),
                    ));
                }
            }
        }
        Ok((index.write(), diagnostics))
    }

    /// `modules.softdep`.
    pub fn modules_softdep(&self) -> Vec<u8> {
        let mut out = b"# Soft dependencies extracted from modules themselves.\n".to_vec();
        for module in &self.modules {
            for softdep in module.values(b"softdep") {
                out.extend_from_slice(b"softdep ");
                out.extend_from_slice(&module.name);
                out.push(b' ');
                out.extend_from_slice(softdep);
                out.push(b'\n');
            }
        }
        out
    }

    /// `modules.symbols`.
    pub fn modules_symbols(&self) -> Vec<u8> {
        let mut out = b"# Aliases for symbols, used by symbol_request().\n".to_vec();
        for (name, owner) in &self.symbols {
            out.extend_from_slice(b"alias symbol:");
            out.extend_from_slice(name);
            out.push(b' ');
            out.extend_from_slice(&self.modules[*owner as usize].name);
            out.push(b'\n');
        }
        out
    }

    /// `modules.symbols.bin`: `symbol:NAME` → module name.
    pub fn modules_symbols_bin(&self, warn_dups: bool) -> Result<Written, NonAsciiError> {
        let mut index = IndexBuilder::new();
        let mut diagnostics = Vec::new();
        let mut key = b"symbol:".to_vec();
        for (name, owner) in &self.symbols {
            key.truncate(7);
            key.extend_from_slice(name);
            let module = &self.modules[*owner as usize];
            if index.insert(&key, &module.name, *owner)? && warn_dups {
                diagnostics.push(diag(
                    Level::Warning,
                    format!(
                        "duplicate module syms:\n{} {}\n",
                        lossy(&key),
                        lossy(&module.name)
                    ),
                ));
            }
        }
        Ok((index.write(), diagnostics))
    }

    /// `modules.devname`: modules with a `devname:` alias and a `char-major-` or
    /// `block-major-` alias.
    pub fn modules_devname(&self) -> Written {
        let mut out = Vec::new();
        let mut diagnostics = Vec::new();
        for module in &self.modules {
            let mut devname: Option<&[u8]> = None;
            let mut kind = None;
            let (mut major, mut minor) = (0u32, 0u32);
            for alias in module.values(b"alias") {
                if let Some(name) = alias.strip_prefix(b"devname:") {
                    devname = Some(name);
                } else if let Some((maj, min)) = scan_major_minor(alias, b"char-major-") {
                    (kind, major, minor) = (Some('c'), maj, min);
                } else if let Some((maj, min)) = scan_major_minor(alias, b"block-major-") {
                    (kind, major, minor) = (Some('b'), maj, min);
                }
                if kind.is_some() && devname.is_some() {
                    break;
                }
            }
            let Some(devname) = devname else { continue };
            match kind {
                Some(kind) => {
                    if out.is_empty() {
                        out.extend_from_slice(
                            b"# Device nodes to trigger on-demand module loading.\n",
                        );
                    }
                    out.extend_from_slice(&module.name);
                    out.push(b' ');
                    out.extend_from_slice(devname);
                    out.extend_from_slice(format!(" {kind}{major}:{minor}\n").as_bytes());
                }
                None => diagnostics.push(diag(
                    Level::Error,
                    format!(
                        "Module '{}' has devname ({}) but lacks major and minor information. \
                         Ignoring.\n",
                        lossy(&module.name),
                        lossy(devname)
                    ),
                )),
            }
        }
        (out, diagnostics)
    }
}

/// `sscanf(s, "PREFIX%u-%u", &a, &b) == 2`.
fn scan_major_minor(s: &[u8], prefix: &[u8]) -> Option<(u32, u32)> {
    let rest = s.strip_prefix(prefix)?;
    let (major, rest) = scan_u(rest)?;
    let rest = rest.strip_prefix(b"-")?;
    let (minor, _) = scan_u(rest)?;
    Some((major, minor))
}

/// scanf's `%u`: leading white space, an optional sign, decimal digits (saturating like
/// `strtoul`, then cut to 32 bits).
fn scan_u(s: &[u8]) -> Option<(u32, &[u8])> {
    let d = kmodlab_cnum::scan(s, 0);
    if d.end == 0 {
        return None;
    }
    let value = match d.magnitude {
        None => u64::MAX,
        Some(m) if d.negative => m.wrapping_neg(),
        Some(m) => m,
    };
    Some((value as u32, &s[d.end..]))
}

/// `modules.builtin.bin` from the contents of `modules.builtin`: each line's module name →
/// an empty value. Lines not starting with a letter are reported and skipped.
pub fn modules_builtin_bin(modules_builtin: &[u8]) -> Result<Written, NonAsciiError> {
    let mut index = IndexBuilder::new();
    let mut diagnostics = Vec::new();
    for piece in fgets_pieces(modules_builtin, 4096) {
        let line = c_str(piece);
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            diagnostics.push(diag(
                Level::Error,
                format!("Invalid modules.builtin line: {}\n", lossy(line)),
            ));
            continue;
        }
        let name = crate::names::path_to_modname(line).unwrap_or_default();
        index.insert(&name, b"", 0)?;
    }
    Ok((index.write(), diagnostics))
}

/// A byte reader with `fgetc` semantics over the contents of `modules.builtin.modinfo`.
struct Stream<'a> {
    data: &'a [u8],
    at: usize,
}

impl Stream<'_> {
    fn eof(&self) -> bool {
        self.at >= self.data.len()
    }

    fn getc(&mut self) -> Option<u8> {
        let c = self.data.get(self.at).copied();
        self.at += 1;
        c
    }

    /// kmod's `flush_stream_to`: bytes up to `end`, a NUL or the end of the data (at most
    /// `max`); `None` unless it stopped at `end`.
    fn read_to(&mut self, end: u8, max: usize, diagnostics: &mut Vec<Diagnostic>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last;
        loop {
            last = self.getc();
            match last {
                Some(c) if c != end && c != 0 && out.len() < max => out.push(c),
                _ => break,
            }
        }
        if out.len() == max {
            diagnostics.push(diag(
                Level::Warning,
                format!(
                    "Could not flush stream: 28. Partial content: {}\n",
                    lossy(&out)
                ),
            ));
            out.pop();
        }
        if last == Some(end) {
            out
        } else {
            Vec::new()
        }
    }

    /// kmod's `flush_stream`: skips to after `end`, a NUL or the end of the data.
    fn skip_to(&mut self, end: u8) {
        while let Some(c) = self.getc() {
            if c == end || c == 0 {
                break;
            }
        }
    }
}

/// `modules.builtin.alias.bin` from the contents of `modules.builtin.modinfo`
/// (`MODULE.KEY=VALUE` strings, NUL-separated): each normalised `alias` → module name.
pub fn modules_builtin_alias_bin(builtin_modinfo: &[u8]) -> Result<Written, NonAsciiError> {
    const PATH_MAX: usize = 4096;
    let mut index = IndexBuilder::new();
    let mut diagnostics = Vec::new();
    let mut stream = Stream {
        data: builtin_modinfo,
        at: 0,
    };
    while !stream.eof() {
        let modname = stream.read_to(b'.', PATH_MAX, &mut diagnostics);
        if modname.is_empty() {
            continue;
        }
        let key = stream.read_to(b'=', PATH_MAX, &mut diagnostics);
        if key != b"alias" {
            stream.skip_to(0);
            continue;
        }
        let value = stream.read_to(0, PATH_MAX, &mut diagnostics);
        if value.is_empty() {
            continue;
        }
        let Some(alias) = alias_normalize(&value) else {
            diagnostics.push(diag(
                Level::Warning,
                format!("Unmatched bracket in {}\n", lossy(&value)),
            ));
            continue;
        };
        index.insert(&alias, &modname, 0)?;
    }
    Ok((index.write(), diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, exports: &[&str], needs: &[&str]) -> Module {
        Module {
            name: name.as_bytes().to_vec(),
            path: format!("/lib/modules/6.1.0/kernel/{name}.ko").into_bytes(),
            relpath: Some(format!("kernel/{name}.ko").into_bytes()),
            exports: exports
                .iter()
                .map(|s| Symbol {
                    name: s.as_bytes().to_vec(),
                    crc: 0,
                })
                .collect(),
            needs: needs
                .iter()
                .map(|s| Need {
                    name: s.as_bytes().to_vec(),
                    crc: 0,
                    weak: false,
                })
                .collect(),
            modinfo: Vec::new(),
        }
    }

    #[test]
    fn dependencies_are_transitive_and_sorted() {
        let modules = vec![
            module("top", &[], &["mid_fn", "base_fn"]),
            module("mid", &["mid_fn"], &["base_fn"]),
            module("base", &["base_fn"], &["printk"]),
        ];
        let resolved = resolve(modules, None, &Options::default()).unwrap();
        assert_eq!(
            String::from_utf8(resolved.modules_dep()).unwrap(),
            "kernel/top.ko: kernel/mid.ko kernel/base.ko\nkernel/mid.ko: kernel/base.ko\n\
             kernel/base.ko:\n"
        );
        assert_eq!(resolved.symbols.len(), 2);
    }

    #[test]
    fn cycles_are_reported() {
        let modules = vec![
            module("a", &["a_fn"], &["b_fn"]),
            module("b", &["b_fn"], &["a_fn"]),
            module("c", &[], &["a_fn"]),
        ];
        let Err(ResolveError::Cycles(d)) = resolve(modules, None, &Options::default()) else {
            panic!("no cycle found");
        };
        let lines: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            lines,
            [
                "Cycle detected: a -> b -> a\n",
                "Found 2 modules in dependency cycles!\n"
            ]
        );
    }

    #[test]
    fn unknown_symbols_with_kernel_symbols() {
        let modules = vec![module("m", &[], &["printk", "nowhere", "__this_module"])];
        let kernel = vec![Symbol {
            name: b"printk".to_vec(),
            crc: 0,
        }];
        let options = Options {
            print_unknown: true,
            ..Options::default()
        };
        let resolved = resolve(modules, Some(kernel), &options).unwrap();
        let lines: Vec<_> = resolved
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            lines,
            ["/lib/modules/6.1.0/kernel/m.ko needs unknown symbol nowhere\n"]
        );
    }

    #[test]
    fn order_from_modules_order() {
        let modules: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"a", Some(b"kernel/a.ko")),
            (b"b", Some(b"kernel/b.ko")),
            (b"c", Some(b"kernel/c.ko")),
            (b"x", None),
        ];
        let (order, d) = module_order(&modules, Some(b"kernel/c.ko\nkernel/a.ko\n"), "o");
        assert!(d.is_empty());
        assert_eq!(&order[..2], &[2, 0]);
        let (order2, d) = module_order(&modules, Some(b"kernel/c.ko\nkernel/a.ko"), "dir/o");
        assert_eq!(d[0].message, "dir/o:2 corrupted line misses '\\n'\n");
        let (table, _) = module_order(&modules, None, "o");
        assert_eq!(order2, table);
    }

    #[test]
    fn builtin_files() {
        let (bytes, d) =
            modules_builtin_bin(b"kernel/fs/ext4/ext4.ko\n/bad\nkernel/x/snd-pcm.ko\n").unwrap();
        assert_eq!(d.len(), 1);
        let index = crate::Index::parse(&bytes).unwrap();
        assert_eq!(index.lookup(b"snd_pcm").unwrap(), Some(&b""[..]));
        assert_eq!(index.lookup(b"ext4").unwrap(), Some(&b""[..]));

        let modinfo =
            b"ext4.alias=fs-ext4\0ext4.license=GPL\0crc32c.alias=crypto-crc32c\0x.alias=a[b\0";
        let (bytes, d) = modules_builtin_alias_bin(modinfo).unwrap();
        assert_eq!(d[0].message, "Unmatched bracket in a[b\n");
        let index = crate::Index::parse(&bytes).unwrap();
        assert_eq!(index.lookup(b"fs_ext4").unwrap(), Some(&b"ext4"[..]));
        assert_eq!(
            index.lookup(b"crypto_crc32c").unwrap(),
            Some(&b"crc32c"[..])
        );
    }

    #[test]
    fn devname() {
        let mut m = module("fuse", &[], &[]);
        m.modinfo = vec![
            (b"alias".to_vec(), b"devname:fuse".to_vec()),
            (b"alias".to_vec(), b"char-major-10-229".to_vec()),
        ];
        let mut lonely = module("lonely", &[], &[]);
        lonely.modinfo = vec![(b"alias".to_vec(), b"devname:x".to_vec())];
        let resolved = resolve(vec![m, lonely], None, &Options::default()).unwrap();
        let (out, d) = resolved.modules_devname();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\n"
        );
        assert_eq!(
            d[0].message,
            "Module 'lonely' has devname (x) but lacks major and minor information. Ignoring.\n"
        );
    }

    #[test]
    fn symvers_and_system_map() {
        let (symbols, d) = parse_symvers(
            b"0x1234abcd\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x1\tother\tdrivers/x\tEXPORT_SYMBOL\n\
              zz\tbad\tvmlinux\tEXPORT_SYMBOL\n",
            "Module.symvers",
            0,
        );
        assert_eq!(
            symbols,
            [Symbol {
                name: b"printk".to_vec(),
                crc: 0x1234abcd
            }]
        );
        assert_eq!(
            d[0].message,
            "Module.symvers:3 Invalid symbol version zz: No such file or directory\n"
        );
        let (symbols, d) = parse_system_map(
            b"ffffffff81000000 T _text\nffffffff82000000 r __ksymtab_printk\nbad\n",
            "System.map",
            0,
        );
        assert_eq!(symbols.len(), 1);
        assert_eq!(symbols[0].name, b"printk");
        assert_eq!(d[0].message, "System.map:3: invalid line: bad\n\n");
    }
}
