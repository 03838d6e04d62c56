//! Warm starts: boot a guest once per kernel, agent and VM configuration, save its state the
//! moment the agent is ready, and start later runs by restoring that state (about half a second
//! under TCG, where a boot takes several). Every restore starts from the same pristine state, so
//! nothing of one try reaches the next; the module and its files reach the guest over the agent
//! channel ([`kmodlab_proto::Request::Put`]).
//!
//! A state lives in `DIR/KEY/` (`state`, `initramfs.cpio`, `meta.json`). KEY hashes everything
//! the state depends on: the QEMU binary, the kernel image, the initramfs (the agent binary and
//! the transport modules), the kernel command line, memory and accelerator, and this format's
//! version; anything else gets another key. Only the most recently used states are kept.

use crate::guest::{initramfs_of, BootSpec, Fallback, Guest, Sink};
use crate::qemu;
use kmodlab_events::Event;
use kmodlab_proto::{CallStatus, Reply, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Bump when what a state holds or how it is restored changes.
const FORMAT: &str = "kmodlab-warm-1";

/// States kept in the directory (each is about the guest's used memory, ~120 MB).
const KEEP: usize = 6;

/// What is recorded beside a state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The guest kernel release.
    pub kernel: String,
    /// `/proc/sys/kernel/tainted` when the state was saved.
    pub tainted: String,
    /// Seconds the cold boot took.
    pub boot_s: f64,
}

/// 64-bit FNV-1a over everything a state depends on.
#[derive(Clone, Copy)]
pub struct Key(u64);

impl Key {
    fn new() -> Key {
        let mut k = Key(0xcbf2_9ce4_8422_2325);
        k.add(FORMAT.as_bytes());
        k
    }

    fn add(&mut self, bytes: &[u8]) {
        // Eight bytes at a time: the initramfs is tens of megabytes.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.0 ^= u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        for &b in chunks.remainder() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 ^= bytes.len() as u64;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    /// A file by path, size and modification time.
    fn add_file(&mut self, path: &Path) {
        self.add(path.as_os_str().as_encoded_bytes());
        if let Ok(m) = std::fs::metadata(path) {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            self.add(&m.len().to_le_bytes());
            self.add(&mtime.to_le_bytes());
        }
    }

    fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The key of the state `spec` would boot into, with the template initramfs (no module, no
/// files) it is made from.
pub fn key(spec: &BootSpec, template_initramfs: &[u8]) -> String {
    let mut k = Key::new();
    k.add_file(&spec.qemu);
    k.add_file(&spec.kernel.image);
    k.add(qemu::kernel_cmdline(&spec.kernel_args.join(" ")).as_bytes());
    k.add(&spec.memory_mb.to_le_bytes());
    k.add(spec.accel.as_str().as_bytes());
    k.add(template_initramfs);
    k.hex()
}

/// Starts the guest from its saved state, or boots it cold and saves the state first. On any
/// doubt the error says why and gives the event sink back for a cold boot.
pub(crate) fn start<'s>(
    spec: &BootSpec,
    warm_dir: &Path,
    sink: Sink<'s>,
) -> Result<Guest<'s>, Fallback<'s>> {
    // The template: no module, no files (those come over the agent channel).
    let cpio = match initramfs_of(spec, &[], &[]) {
        Ok(c) => c,
        Err(e) => return Err((e, sink)),
    };
    let dir = warm_dir.join(key(spec, &cpio));
    // A configuration whose state could not be saved or restored is not tried again: that would
    // cost a boot more on every run.
    if let Ok(why) = std::fs::read_to_string(dir.join(FAILED)) {
        return Err((
            format!(
                "warm starts are off for this configuration since: {} (remove {} to retry)",
                why.trim(),
                dir.display()
            ),
            sink,
        ));
    }
    if let Some(meta) = saved(&dir) {
        return remember_failure(&dir, restore(spec, &dir, meta, sink));
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Err((format!("{}: {e}", dir.display()), sink));
    }
    // One process saves a state; others wanting the same one wait, then restore it.
    let lock = match std::fs::File::create(dir.join(".lock")) {
        Ok(f) => f,
        Err(e) => return Err((format!("{}: {e}", dir.display()), sink)),
    };
    if lock.lock().is_err() {
        return Err(("cannot lock the saved state".into(), sink));
    }
    if let Some(meta) = saved(&dir) {
        drop(lock);
        return remember_failure(&dir, restore(spec, &dir, meta, sink));
    }
    let r = remember_failure(&dir, save(spec, &dir, &cpio, sink));
    drop(lock);
    prune(warm_dir);
    r
}

/// The marker of a configuration whose warm start failed, with why.
const FAILED: &str = "failed";

fn remember_failure<'s>(
    dir: &Path,
    r: Result<Guest<'s>, Fallback<'s>>,
) -> Result<Guest<'s>, Fallback<'s>> {
    match &r {
        // A slow answer on a loaded machine says nothing about the next run.
        Err((why, _)) if !why.starts_with(SLOW) => {
            let _ = std::fs::write(dir.join(FAILED), format!("{why}\n"));
        }
        _ => {}
    }
    r
}

/// How a failure that may not happen again begins.
const SLOW: &str = "the agent did not answer";

/// The saved state in `dir`, if it is complete.
fn saved(dir: &Path) -> Option<Meta> {
    let meta = std::fs::read(dir.join("meta.json")).ok()?;
    let meta = serde_json::from_slice(&meta).ok()?;
    (dir.join("state").is_file() && dir.join("initramfs.cpio").is_file()).then_some(meta)
}

fn restore<'s>(
    spec: &BootSpec,
    dir: &Path,
    meta: Meta,
    sink: Sink<'s>,
) -> Result<Guest<'s>, Fallback<'s>> {
    // When it was last used, for pruning.
    if let Ok(f) = std::fs::File::create(dir.join("used")) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    let mut guest = Guest::launch(spec, dir.join("initramfs.cpio"), true, sink)?;
    let deadline = Instant::now() + spec.boot_deadline.min(Duration::from_secs(20));
    let state = dir.join("state");
    let restored = (|| -> std::io::Result<()> {
        let mut q = guest.vm.qmp(deadline)?;
        q.migration_events(deadline)?;
        let uri = format!("file:{}", state.display());
        q.execute("migrate-incoming", json!({ "uri": uri }), deadline)?;
        q.wait_migration(deadline)?;
        q.execute("cont", Value::Null, deadline)?;
        Ok(())
    })();
    if let Err(e) = restored {
        return Err(guest.abandon(format!("restoring {}: {e}", state.display())));
    }
    // The agent was waiting for a request when the state was saved: it must answer now, on a
    // kernel as clean as then.
    match tainted(&mut guest, Duration::from_secs(5)) {
        Ok(t) if t == meta.tainted => {}
        Ok(t) => {
            return Err(guest.abandon(format!(
                "the restored kernel is tainted ({t}), not as saved ({})",
                meta.tainted
            )))
        }
        Err(e) => return Err(guest.abandon(e)),
    }
    if let Err(e) = put_files(&mut guest, spec) {
        return Err(guest.abandon(e));
    }
    guest.kernel = meta.kernel;
    let boot_s = guest.vm.elapsed_s();
    guest.emit(&Event::AgentReady { boot_s });
    guest.emit(&Event::Started {
        warm: true,
        detail: format!("restored the saved VM state in {boot_s:.1}s"),
    });
    Ok(guest)
}

fn save<'s>(
    spec: &BootSpec,
    dir: &Path,
    cpio: &[u8],
    sink: Sink<'s>,
) -> Result<Guest<'s>, Fallback<'s>> {
    let initrd = dir.join("initramfs.cpio");
    let tmp = dir.join("initramfs.cpio.tmp");
    if let Err(e) = std::fs::write(&tmp, cpio).and_then(|()| std::fs::rename(&tmp, &initrd)) {
        return Err((format!("{}: {e}", initrd.display()), sink));
    }
    let mut guest = Guest::launch(spec, initrd, false, sink)?;
    if let Err(e) = guest.wait_ready(spec.boot_deadline) {
        return Err(guest.abandon(e));
    }
    let boot_s = guest.vm.elapsed_s();
    let tainted = match tainted(&mut guest, Duration::from_secs(10)) {
        Ok(t) => t,
        Err(e) => return Err(guest.abandon(e)),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let state_tmp = dir.join("state.tmp");
    let saved = (|| -> std::io::Result<()> {
        let mut q = guest.vm.qmp(deadline)?;
        q.migration_events(deadline)?;
        q.execute("stop", Value::Null, deadline)?;
        let uri = format!("file:{}", state_tmp.display());
        q.execute("migrate", json!({ "uri": uri }), deadline)?;
        q.wait_migration(deadline)?;
        q.execute("cont", Value::Null, deadline)?;
        std::fs::rename(&state_tmp, dir.join("state"))?;
        let meta = Meta {
            kernel: guest.kernel.clone(),
            tainted,
            boot_s,
        };
        let mut f = std::fs::File::create(dir.join("meta.json"))?;
        f.write_all(&serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?)?;
        Ok(())
    })();
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&state_tmp);
        return Err(guest.abandon(format!("saving the VM state: {e}")));
    }
    if let Err(e) = put_files(&mut guest, spec) {
        return Err(guest.abandon(e));
    }
    let size = std::fs::metadata(dir.join("state")).map_or(0, |m| m.len());
    guest.emit(&Event::AgentReady { boot_s });
    guest.emit(&Event::Started {
        warm: false,
        detail: format!(
            "no saved VM state for this kernel, agent and configuration: booted cold and saved \
             one ({} MB in {:.1}s) for the next runs",
            size / 1_000_000,
            started.elapsed().as_secs_f64()
        ),
    });
    Ok(guest)
}

fn tainted(guest: &mut Guest, within: Duration) -> Result<String, String> {
    let req = Request::Read {
        paths: vec!["/proc/sys/kernel/tainted".into()],
    };
    match guest.request(&req, within) {
        crate::guest::Step::Reply(Reply::Files { files }) => files
            .first()
            .and_then(|f| f.contents.clone())
            .map(|c| c.trim().to_string())
            .ok_or_else(|| "the agent could not read the taint flags".into()),
        crate::guest::Step::Reply(other) => Err(format!("unexpected agent reply {other:?}")),
        crate::guest::Step::Timeout => Err(format!("{SLOW} within {within:?}")),
        crate::guest::Step::Gone(why) => Err(why),
    }
}

/// Sends the modules under test and the other files of `spec` to the guest.
fn put_files(guest: &mut Guest, spec: &BootSpec) -> Result<(), String> {
    let modules = spec.modules.iter().map(|m| {
        (
            format!("{}/{}", kmodlab_proto::GUEST_MODULE_DIR, m.file_name),
            &m.image,
        )
    });
    let files = spec.files.iter().map(|(p, d)| (p.clone(), d));
    for (path, data) in modules.chain(files) {
        let req = Request::Put {
            path: path.clone(),
            data: kmodlab_proto::base64_encode(data),
        };
        match guest.request(&req, Duration::from_secs(20)) {
            crate::guest::Step::Reply(Reply::Call {
                status: CallStatus::Ok,
                ..
            }) => {}
            other => return Err(format!("sending {path} to the guest: {other:?}")),
        }
    }
    Ok(())
}

/// Removes all but the [`KEEP`] most recently used states.
fn prune(warm_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(warm_dir) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let p = e.path();
            let used = ["used", "meta.json"]
                .iter()
                .filter_map(|f| std::fs::metadata(p.join(f)).and_then(|m| m.modified()).ok())
                .max()
                .unwrap_or(UNIX_EPOCH);
            (used, p)
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, old) in dirs.into_iter().skip(KEEP) {
        // Never a state another process is saving right now.
        let Ok(lock) = std::fs::File::open(old.join(".lock")) else {
            let _ = std::fs::remove_dir_all(&old);
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::BootKernel;
    use crate::qemu::Accel;

    fn spec(dir: &Path) -> BootSpec {
        BootSpec {
            qemu: dir.join("qemu"),
            kernel: BootKernel {
                release: "6.12".into(),
                image: dir.join("vmlinuz"),
                modules_dir: None,
            },
            accel: Accel::Tcg,
            agent_binary: dir.join("agent"),
            memory_mb: 512,
            run_dir: dir.join("run"),
            boot_deadline: Duration::from_secs(60),
            modules: Vec::new(),
            files: Vec::new(),
            kernel_args: Vec::new(),
            warm_dir: Some(dir.join("warm")),
        }
    }

    #[test]
    fn a_state_belongs_to_one_kernel_agent_and_configuration() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("qemu"), b"qemu").unwrap();
        std::fs::write(dir.join("vmlinuz"), b"kernel one").unwrap();
        let s = spec(&dir);
        let cpio = b"initramfs with agent build 1".to_vec();
        let k = key(&s, &cpio);
        assert_eq!(k, key(&s, &cpio), "the same inputs give the same key");
        // Another agent build (the initramfs holds it as /init).
        assert_ne!(k, key(&s, b"initramfs with agent build 2"));
        // Another kernel: another image, or the same path rewritten.
        let mut other = s.clone();
        other.kernel.image = dir.join("vmlinuz-2");
        std::fs::write(&other.kernel.image, b"kernel two").unwrap();
        assert_ne!(k, key(&other, &cpio));
        std::fs::write(dir.join("vmlinuz"), b"kernel one, rebuilt").unwrap();
        let rebuilt = key(&s, &cpio);
        assert_ne!(k, rebuilt);
        // Another VM configuration.
        let mut args = s.clone();
        args.kernel_args = vec!["watchdog_thresh=1".into()];
        assert_ne!(rebuilt, key(&args, &cpio));
        let mut mem = s.clone();
        mem.memory_mb = 256;
        assert_ne!(rebuilt, key(&mem, &cpio));
        // What the run puts in the guest is not part of the state.
        let mut with_module = s.clone();
        with_module.modules.push(crate::initramfs::GuestModule {
            file_name: "hello.ko".into(),
            image: vec![1, 2, 3],
        });
        assert_eq!(rebuilt, key(&with_module, &cpio));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn prune_keeps_the_most_recently_used_states() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for i in 0..KEEP + 3 {
            let d = dir.join(format!("state-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("meta.json"), b"{}").unwrap();
            let t = UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(d.join("meta.json"))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let expected: Vec<String> = (3..KEEP + 3).map(|i| format!("state-{i}")).collect();
        assert_eq!(left, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
