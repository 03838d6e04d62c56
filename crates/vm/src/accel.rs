//! Choosing the accelerator: KVM when it really works, else TCG.
//!
//! A `/dev/kvm` that opens is not enough: on some hosts KVM is broken and QEMU prints
//! `KVM internal error` with a register dump before the guest prints anything, then hangs. So the
//! probe boots the kernel under KVM with a short deadline and watches for the first console
//! output, the failure text, or an early exit. The answer is remembered per host, QEMU build and
//! kernel image.

use crate::qemu::{self, Accel};
use std::fs::OpenOptions;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the probe waits for the kernel's first console output under KVM.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(8);

/// What the probe decided and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The accelerator to use.
    pub accel: Accel,
    /// One line saying why.
    pub reason: String,
    /// Whether the answer came from the cache.
    pub cached: bool,
}

/// Whether QEMU's stderr shows the broken-KVM failure.
pub fn kvm_failure_text(stderr: &str) -> bool {
    stderr.contains("KVM internal error")
        || stderr.contains("failed to initialize kvm")
        || stderr.contains("Could not access KVM kernel module")
}

fn cache_key(qemu: &Path, kernel: &Path) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [qemu, kernel] {
        p.hash(&mut h);
        if let Ok(m) = std::fs::metadata(p) {
            m.len().hash(&mut h);
            m.modified().ok().hash(&mut h);
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .hash(&mut h);
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Picks the accelerator: `KMODLAB_ACCEL` when set, else the cached probe result, else a probe.
pub fn choose(qemu: &Path, kernel: &Path, cache_dir: &Path) -> Decision {
    if let Some(a) = std::env::var("KMODLAB_ACCEL")
        .ok()
        .as_deref()
        .and_then(Accel::from_name)
    {
        return Decision {
            accel: a,
            reason: "KMODLAB_ACCEL".into(),
            cached: false,
        };
    }
    if OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Decision {
            accel: Accel::Tcg,
            reason: "/dev/kvm is not usable".into(),
            cached: false,
        };
    }
    choose_by_probe(qemu, kernel, cache_dir, PROBE_DEADLINE)
}

/// The cached answer for `qemu` and `kernel`, else a probe with `deadline`. Only a clear answer
/// is remembered: KVM worked, KVM failed with its known text, or QEMU died early. A probe that
/// ran out of time (a loaded machine) decides this run only.
fn choose_by_probe(qemu: &Path, kernel: &Path, cache_dir: &Path, deadline: Duration) -> Decision {
    let file: PathBuf = cache_dir.join(format!("accel-{}", cache_key(qemu, kernel)));
    if let Ok(text) = std::fs::read_to_string(&file) {
        let mut parts = text.splitn(2, ' ');
        if let Some(accel) = parts.next().and_then(Accel::from_name) {
            let reason = parts.next().unwrap_or("").trim().to_string();
            return Decision {
                accel,
                reason,
                cached: true,
            };
        }
    }
    let (d, clear) = probe_within(qemu, kernel, deadline);
    if clear {
        let _ = std::fs::create_dir_all(cache_dir);
        let _ = std::fs::write(&file, format!("{} {}\n", d.accel.as_str(), d.reason));
    }
    d
}

/// Boots `kernel` under KVM until its first console output, with [`PROBE_DEADLINE`].
pub fn probe(qemu: &Path, kernel: &Path) -> Decision {
    probe_within(qemu, kernel, PROBE_DEADLINE).0
}

/// [`probe`] with `deadline`; also says whether the answer is clear (not a timeout).
fn probe_within(qemu: &Path, kernel: &Path, deadline: Duration) -> (Decision, bool) {
    let tcg = |reason: String| Decision {
        accel: Accel::Tcg,
        reason,
        cached: false,
    };
    let mut args = qemu::machine_args(Accel::Kvm, 256, 1);
    args.extend(qemu::boot_args(kernel, None, "console=ttyS0 panic=-1"));
    args.extend(qemu::console_args());
    let mut cmd = Command::new(qemu);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    kmodlab_sys::kill_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (tcg(format!("cannot start {}: {e}", qemu.display())), false),
    };
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    // The kernel has no root to mount, so a working guest gets as far as the VFS panic; the
    // broken KVM seen on some hosts dies long before, sometimes after a few early lines.
    std::thread::spawn(move || {
        let mut s = String::new();
        let mut b = [0u8; 4096];
        while let Ok(n) = out.read(&mut b) {
            if n == 0 {
                break;
            }
            s.push_str(&String::from_utf8_lossy(&b[..n]));
            if s.contains("Kernel panic") || s.contains("VFS:") {
                let _ = tx2.send((true, s));
                return;
            }
        }
        let _ = tx2.send((true, String::new()));
    });
    std::thread::spawn(move || {
        let mut s = String::new();
        let mut b = [0u8; 4096];
        while let Ok(n) = err.read(&mut b) {
            if n == 0 {
                break;
            }
            s.push_str(&String::from_utf8_lossy(&b[..n]));
            if kvm_failure_text(&s) {
                break;
            }
        }
        let _ = tx.send((false, s));
    });
    let until = Instant::now() + deadline;
    let mut clear = true;
    let decision = loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok((true, text)) if !text.is_empty() => {
                break Decision {
                    accel: Accel::Kvm,
                    reason: "a KVM probe boot reached the kernel's root mount".into(),
                    cached: false,
                }
            }
            Ok((true, _)) => break tcg("QEMU under KVM exited before the kernel got far".into()),
            Ok((false, text)) if kvm_failure_text(&text) => {
                let first = text
                    .lines()
                    .find(|l| kvm_failure_text(l))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                break tcg(format!("KVM is broken here ({first})"));
            }
            Ok((false, _)) => continue,
            Err(_) => {
                clear = false;
                break tcg(format!(
                    "a KVM probe boot did not get far within {deadline:?} (not remembered: \
                     the next run probes again)"
                ));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    (decision, clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_broken_kvm_text() {
        assert!(kvm_failure_text(
            "KVM internal error. Suberror: 1\nemulation failure\nRAX=..."
        ));
        assert!(!kvm_failure_text(
            "qemu-system-x86_64: warning: host doesn't support requested feature"
        ));
    }

    /// Regression: a probe that ran out of time on a loaded machine was remembered as "KVM is
    /// broken" for good.
    #[test]
    fn a_probe_that_times_out_is_not_remembered() {
        let dir = std::env::temp_dir().join(format!("kmodlab-accel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A QEMU that says nothing and never ends; and one that prints the broken-KVM text.
        let slow = dir.join("slow-qemu");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        let broken = dir.join("broken-qemu");
        std::fs::write(
            &broken,
            "#!/bin/sh\necho 'KVM internal error. Suberror: 1' >&2\nexec sleep 30\n",
        )
        .unwrap();
        for f in [&slow, &broken] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, b"kernel").unwrap();
        let cache = dir.join("cache");
        let short = Duration::from_millis(300);
        let d = choose_by_probe(&slow, &kernel, &cache, short);
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("not remembered"), "{}", d.reason);
        assert!(!cache.exists(), "a timeout leaves no cache entry");
        let d = choose_by_probe(&broken, &kernel, &cache, Duration::from_secs(10));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.contains("KVM is broken here"), "{}", d.reason);
        let again = choose_by_probe(&broken, &kernel, &cache, short);
        assert!(again.cached, "a clear answer is remembered");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
