//! `kmodlab gdb`: what a gdb session on a module needs from the host (gdb, the kernel's vmlinux,
//! a module with debug info), checked before anything boots, and the session itself
//! ([`kmodlab_vm::gdb`]).

use crate::{LabError, Module};
use kmodlab_vm::gdb::{GdbPlan, KernelSymbols, NOKASLR};
use kmodlab_vm::shell::HostLink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Handles SIGINT, SIGTERM and SIGHUP from now on. Until gdb runs (a boot) each ends kmodlab at
/// once (QEMU dies with it). Once gdb runs, Ctrl-C is gdb's (the terminal sends it to gdb too,
/// which interrupts the guest) and kmodlab ignores it; SIGTERM and SIGHUP are posted to `link`
/// and end gdb, then QEMU. Returns the flag that says gdb runs ([`GdbPlan::gdb_started`]).
pub fn handle_signals(link: HostLink) -> Result<Arc<AtomicBool>, LabError> {
    let signals = kmodlab_sys::tty::Signals::catch(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .map_err(|e| LabError::Infra(format!("cannot handle signals: {e}")))?;
    let started = Arc::new(AtomicBool::new(false));
    let gdb_runs = started.clone();
    std::thread::spawn(move || loop {
        let sig = signals.wait();
        if !gdb_runs.load(Ordering::SeqCst) {
            std::process::exit(128 + sig);
        }
        if sig != libc::SIGINT {
            link.post(kmodlab_vm::shell::HostEvent::Signal(sig));
        }
    });
    Ok(started)
}

/// The host's gdb: `KMODLAB_GDB`, else `gdb` on `PATH`.
pub fn find_gdb() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("KMODLAB_GDB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(LabError::Infra(format!(
                "KMODLAB_GDB names {}, which does not exist",
                p.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("gdb"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            LabError::Infra(
                "no gdb on PATH: install it (apt-get install gdb, or scripts/setup)".into(),
            )
        })
}

/// Where gdb gets a kernel's symbols: the vmlinux with DWARF that a lab kernel keeps in its build
/// tree, or the one Debian's `-dbg` package installs (the one in its headers package has no
/// symbols); else a symbol table made from the guest's `/proc/kallsyms` once it runs.
pub fn kernel_symbols(kdir: &Path, release: &str) -> KernelSymbols {
    let candidates = [
        kdir.join("vmlinux"),
        PathBuf::from(format!("/usr/lib/debug/boot/vmlinux-{release}")),
        PathBuf::from(format!("/usr/lib/debug/lib/modules/{release}/vmlinux")),
    ];
    candidates
        .into_iter()
        .find(|p| has_dwarf(p))
        .map_or(KernelSymbols::Kallsyms, KernelSymbols::Vmlinux)
}

/// What gdb will lack with `symbols`, for the user: nothing with a vmlinux.
pub fn symbols_note(symbols: &KernelSymbols, release: &str) -> Option<String> {
    match symbols {
        KernelSymbols::Vmlinux(_) => None,
        KernelSymbols::Kallsyms => Some(format!(
            "kernel {release} has no vmlinux with debug info: gdb names kernel functions from \
             the guest's /proc/kallsyms, without kernel source lines or types (Debian's \
             linux-image-{release}-dbg has them, about 1 GB; the lab kernels have them too)"
        )),
    }
}

/// Whether the ELF file at `path` has a non-empty `.debug_info` section, read from its section
/// headers alone (a vmlinux is hundreds of megabytes; Debian's headers package ships one without
/// any symbols).
pub fn has_dwarf(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let read = |f: &mut std::fs::File, at: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(at)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let check = || -> Option<bool> {
        let mut f = std::fs::File::open(path).ok()?;
        let head = read(&mut f, 0, 64)?;
        // ELF, 64-bit, little-endian: what x86-64 kernels are.
        if head[..4] != *b"\x7fELF" || head[4] != 2 || head[5] != 1 {
            return Some(false);
        }
        let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
        let u64_at = |b: &[u8], i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        let shoff = u64_at(&head, 0x28)?;
        let (entsize, count, names) = (
            u16_at(&head, 0x3a),
            u16_at(&head, 0x3c),
            u16_at(&head, 0x3e),
        );
        if entsize < 64 || count == 0 || names >= count {
            return Some(false);
        }
        let table = read(&mut f, shoff, usize::try_from(entsize * count).ok()?)?;
        let header = |i: u64| &table[(i * entsize) as usize..(i * entsize + 64) as usize];
        let strtab = header(names);
        let strings = read(
            &mut f,
            u64_at(strtab, 0x18)?,
            usize::try_from(u64_at(strtab, 0x20)?).ok()?,
        )?;
        Some((0..count).any(|i| {
            let h = header(i);
            let name = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let size = u64_at(h, 0x20).unwrap_or(0);
            strings
                .get(name..)
                .is_some_and(|n| n.starts_with(b".debug_info\0"))
                && size > 0
        }))
    };
    check().unwrap_or(false)
}

/// The module's .ko for gdb's `add-symbol-file`: the file itself when it is not compressed,
/// else its image written into the run directory. Refused without debug info.
fn module_symbols(module: &Module, run_dir: &Path) -> Result<PathBuf, LabError> {
    let file = kmodlab_symbolize::DebugFile::from_bytes(&module.ko, module.image.clone())
        .map_err(|e| LabError::Input(format!("{}: {e}", module.ko.display())))?;
    if !file.has_debug_info() {
        return Err(LabError::Input(format!(
            "{}: no debug info (.debug_info), so gdb cannot show its source: build it against \
             a kernel with CONFIG_DEBUG_INFO (the lab kernels have it), unstripped",
            module.ko.display()
        )));
    }
    let raw = std::fs::read(&module.ko).unwrap_or_default();
    if raw == module.image {
        return Ok(module.ko.clone());
    }
    std::fs::create_dir_all(run_dir)
        .map_err(|e| LabError::Infra(format!("{}: {e}", run_dir.display())))?;
    let copy = run_dir.join(format!("{}.ko", module.name));
    std::fs::write(&copy, &module.image)
        .map_err(|e| LabError::Infra(format!("{}: {e}", copy.display())))?;
    Ok(copy)
}

/// What `kmodlab gdb` is asked for.
pub struct GdbOptions {
    /// Module parameters, `name=value` each.
    pub params: Vec<String>,
    /// Where gdb gets the kernel's symbols ([`kernel_symbols`]).
    pub symbols: KernelSymbols,
    /// Words appended to the kernel command line (a spec's `kernel_args`).
    pub kernel_args: Vec<String>,
    /// The user's arguments to gdb.
    pub gdb_args: Vec<String>,
    /// Where signals are posted.
    pub link: HostLink,
    /// Set once gdb runs ([`handle_signals`]).
    pub gdb_started: Arc<AtomicBool>,
}

impl crate::Lab {
    /// The gdb session for `module`: checks that gdb and the module's
    /// debug info are there.
    pub fn gdb_plan(&self, module: &Module, options: GdbOptions) -> Result<GdbPlan, LabError> {
        let gdb = find_gdb()?;
        let symbols = options.symbols;
        let run_dir = self.new_run_dir(&module.name);
        let ko = module_symbols(module, &run_dir)?;
        let file_name = format!("{}.ko", module.name);
        let mut boot = self.boot_spec(run_dir, Duration::from_secs(60));
        boot.gdb_stub = true;
        boot.kernel_args = options.kernel_args;
        if !boot.kernel_args.iter().any(|a| a == NOKASLR) {
            boot.kernel_args.push(NOKASLR.into());
        }
        boot.modules = vec![kmodlab_vm::initramfs::GuestModule {
            file_name: file_name.clone(),
            image: module.image.clone(),
        }];
        // The kernel's own gdb scripts (lx-dmesg, lx-lsmod, ...) when its tree has them.
        let mut gdb_options = Vec::new();
        let vmlinux_dir = match &symbols {
            KernelSymbols::Vmlinux(path) => path.parent(),
            KernelSymbols::Kallsyms => None,
        };
        if let Some(dir) = vmlinux_dir.filter(|d| d.join("vmlinux-gdb.py").exists()) {
            gdb_options.extend([
                "-iex".to_string(),
                format!("add-auto-load-safe-path {}", dir.display()),
            ]);
        }
        Ok(GdbPlan {
            boot,
            gdb,
            symbols,
            module_name: module.name.clone(),
            module_file: file_name,
            modules: vec![(module.name.clone(), ko)],
            params: options.params,
            gdb_options,
            gdb_args: options.gdb_args,
            link: options.link,
            gdb_started: options.gdb_started,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself has DWARF (a debug build); a file that is no ELF has none.
    #[test]
    fn dwarf_is_found_from_the_section_headers() {
        let exe = std::env::current_exe().unwrap();
        assert!(has_dwarf(&exe), "{}", exe.display());
        let dir = std::env::temp_dir().join(format!("kmodlab-dwarf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_elf = dir.join("vmlinux");
        std::fs::write(
            &not_elf,
            b"not an ELF file at all, but long enough to be read as one; ...",
        )
        .unwrap();
        assert!(!has_dwarf(&not_elf));
        assert!(!has_dwarf(&dir.join("missing")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
