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

use crate::guest::{initramfs_with, BootSpec, Fallback, Guest, Sink};
use crate::qemu;
use kmodlab_events::Event;
use kmodlab_proto::{CallStatus, Reply, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Bump when what a state holds or how it is restored changes.
const FORMAT: &str = "kmodlab-warm-2";

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
    /// The size of the `state` file as saved: another size means it was damaged.
    pub state_bytes: u64,
    /// How the `state` file is compressed: `zstd`, or `None` (QEMU's stream as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}

/// The host's `zstd`, which keeps states at a third to a seventh of their size (decompressing
/// one costs 0.05-0.1 s of a restore); without it, states are kept as QEMU writes them.
fn zstd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("zstd"))
        .find(|p| p.is_file())
}

/// An unpacked state in memory, removed when dropped.
struct Unpacked(PathBuf);

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the states unpacked in `dir` by kmodlab processes that are gone (killed before they
/// could remove their own): each holds a whole guest's memory in `/dev/shm`.
fn remove_orphan_unpacked(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("kmodlab-state-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// How much memory the unpacked states kept for the next restores may take: the most recently
/// used are kept within it (and always the newest one).
const KEPT_UNPACKED_BYTES: u64 = 256 << 20;

/// The prefix of the unpacked states kept in memory for the next restores, by this user.
fn kept_prefix() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    format!("kmodlab-warm-{uid}-")
}

/// Where unpacked states live: in memory (`/dev/shm`) when the host has it.
fn unpack_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The name of the kept unpacked copy of the state in `dir`, whose packed file has `meta`: a
/// state saved again has another size or time, so another name.
fn kept_name(dir: &Path, meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("{}{key}-{}-{mtime}", kept_prefix(), meta.len())
}

/// The kept unpacked state `name` in `tmp`, linked to a name of this process's own (so that no
/// pruning by another kmodlab can take it away before QEMU has read it); `None` when it is not
/// there.
fn use_kept(tmp: &Path, name: &str) -> Option<Unpacked> {
    let kept = tmp.join(name);
    let own = tmp.join(format!("kmodlab-state-{}-{}", std::process::id(), seq()));
    std::fs::hard_link(&kept, &own).ok()?;
    // Its time says when it was last used, for pruning.
    if let Ok(f) = std::fs::File::open(&kept) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Some(Unpacked(own))
}

/// Keeps the unpacked state `unpacked` (this process's own) as `name` for the next restores,
/// and removes the least recently used kept states beyond `budget` bytes
/// ([`KEPT_UNPACKED_BYTES`]).
fn keep(tmp: &Path, unpacked: &Unpacked, name: &str, budget: u64) {
    let _ = std::fs::hard_link(&unpacked.0, tmp.join(name));
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let prefix = kept_prefix();
    let mut kept: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    let mut total = 0;
    for (i, (_, len, path)) in kept.iter().enumerate() {
        total += len;
        if i > 0 && total > budget {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A number for this process's unpacked states.
fn seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Unpacks a zstd state into `out`.
fn decompress(zstd: &Path, packed: &Path, out: &Path) -> std::io::Result<()> {
    let status = std::process::Command::new(zstd)
        .args(["-d", "-q", "-f", "-o"])
        .arg(out)
        .arg(packed)
        .stdin(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        let _ = std::fs::remove_file(out);
        return Err(std::io::Error::other(format!(
            "{}: {status}",
            zstd.display()
        )));
    }
    Ok(())
}

/// Compresses QEMU's stream `raw` into `out` with zstd, and removes `raw`.
fn compress(zstd: &Path, raw: &Path, out: &Path) -> std::io::Result<()> {
    let status = std::process::Command::new(zstd)
        .args(["-1", "-q", "-f", "-T0", "--rm", "-o"])
        .arg(out)
        .arg(raw)
        .stdin(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        let _ = std::fs::remove_file(out);
        return Err(std::io::Error::other(format!(
            "{} {}: {status}",
            zstd.display(),
            raw.display()
        )));
    }
    Ok(())
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

/// The start of the marker a kmodlab binary carries with the identity of its guest code (the
/// agent, the module tools, dmesg: see the workspace's `build.rs`): 32 lowercase hex digits and
/// a newline follow it.
const GUEST_CODE_MARKER: &[u8] = b"kmodlab-guest-code:";

/// The identity marker of the guest code in an agent binary, when it has one: builds that carry
/// the same one run the same code in the guest, and share saved states.
pub fn guest_code_identity(agent: &[u8]) -> Option<&[u8]> {
    let len = GUEST_CODE_MARKER.len() + 33;
    let mut from = 0;
    // The binary is tens of megabytes: jump from one first byte to the next.
    while let Some(at) = agent.get(from..)?.iter().position(|&b| b == b'k') {
        let start = from + at;
        from = start + 1;
        let marker = agent.get(start..start + len)?;
        let digits = &marker[GUEST_CODE_MARKER.len()..len - 1];
        if marker.starts_with(GUEST_CODE_MARKER)
            && marker[len - 1] == b'\n'
            && digits
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Some(marker);
        }
    }
    None
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

/// Why a warm start did not happen, and whether trying again would fail the same way.
struct Failure {
    why: String,
    /// The same configuration would fail again (QEMU refused a command): worth a marker.
    lasting: bool,
    /// The saved state could not be used and was thrown away: a new one can be saved now.
    discarded: bool,
}

impl Failure {
    /// A failure that says nothing about the next run (a deadline on a loaded machine, QEMU
    /// going away, a full disk, what the run brought).
    fn passing(why: String) -> Failure {
        Failure {
            why,
            lasting: false,
            discarded: false,
        }
    }

    /// A QMP failure: lasting when QEMU refused to migrate (it would refuse again), passing
    /// for everything else: deadlines, QEMU going away, and the run-state races around the end
    /// of a migration (`cont`, `stop`, `query-status`).
    fn qmp(what: &str, e: &std::io::Error) -> Failure {
        let lasting = crate::qmp::Refused::of(e).is_some_and(|r| {
            matches!(
                r.command.as_str(),
                "migrate" | "migrate-incoming" | "migrate-set-capabilities" | "migration"
            )
        });
        Failure {
            why: format!("{what}: {e}"),
            lasting,
            discarded: false,
        }
    }
}

type Attempt<'s> = Result<Guest<'s>, (Failure, Sink<'s>)>;

/// Starts the guest from its saved state, or boots it cold and saves the state first. On any
/// doubt the error says why and gives the event sink back for a cold boot.
pub(crate) fn start<'s>(
    spec: &BootSpec,
    warm_dir: &Path,
    sink: Sink<'s>,
) -> Result<Guest<'s>, Fallback<'s>> {
    // The template: no module, no files (those come over the agent channel). Its key has the
    // identity of the agent's guest code in place of the agent when the binary carries one.
    let agent = match std::fs::read(&spec.agent_binary) {
        Ok(a) => a,
        Err(e) => return Err((format!("{}: {e}", spec.agent_binary.display()), sink)),
    };
    let identity = guest_code_identity(&agent);
    let keyed = match initramfs_with(spec, identity.unwrap_or(&agent), &[], &[]) {
        Ok(c) => c,
        Err(e) => return Err((e, sink)),
    };
    let dir = warm_dir.join(key(spec, &keyed));
    // A configuration whose state could not be saved or restored twice running is not tried
    // again for a while: that would cost a boot more on every run.
    if let Some(why) = failed_marker(&dir) {
        return Err((
            format!(
                "warm starts are off for this configuration for a day since: {why} (remove {} \
                 to retry now)",
                dir.join(FAILED).display()
            ),
            sink,
        ));
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Err((format!("{}: {e}", dir.display()), sink));
    }
    // Restorers hold the lock shared, the one process that saves holds it alone, and pruning
    // takes it without waiting: nothing is removed while in use, and others wanting a state
    // being saved wait for it, then restore it.
    let lock = match std::fs::File::create(dir.join(".lock")) {
        Ok(f) => f,
        Err(e) => return Err((format!("{}: {e}", dir.display()), sink)),
    };
    if lock.lock_shared().is_err() {
        return Err(("cannot lock the saved state".into(), sink));
    }
    let sink = match saved(&dir) {
        Some(Ok(meta)) => match restore(spec, &dir, meta, sink) {
            // A state that could not be used was thrown away: save a new one right now, unless
            // that happened twice running (then a marker says so).
            Err((f, sink)) if f.discarded && !f.lasting => {
                sink(&Event::Started {
                    warm: false,
                    detail: format!("{}: booting cold and saving the state again", f.why),
                });
                sink
            }
            r => return settle(&dir, r),
        },
        Some(Err(damaged)) => {
            discard(&dir);
            sink(&Event::Started {
                warm: false,
                detail: format!("{damaged}: booting cold and saving it again"),
            });
            sink
        }
        None => sink,
    };
    let _ = lock.unlock();
    if lock.lock().is_err() {
        return Err(("cannot lock the saved state".into(), sink));
    }
    if let Some(Ok(meta)) = saved(&dir) {
        return settle(&dir, restore(spec, &dir, meta, sink));
    }
    let cpio = match identity {
        Some(_) => match initramfs_with(spec, &agent, &[], &[]) {
            Ok(c) => c,
            Err(e) => return Err((e, sink)),
        },
        None => keyed,
    };
    let r = settle(&dir, save(spec, &dir, &cpio, sink));
    drop(lock);
    prune(warm_dir);
    r
}

/// The marker of a configuration whose warm start keeps failing, with why.
const FAILED: &str = "failed";
/// Consecutive restores of this configuration that failed (a count).
const RESTORE_FAILURES: &str = "restore-failures";
/// How long a [`FAILED`] marker holds.
const MARKER_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Why warm starts are off for the configuration in `dir`, when a marker younger than
/// [`MARKER_LIFETIME`] says so; an older marker is removed.
fn failed_marker(dir: &Path) -> Option<String> {
    let path = dir.join(FAILED);
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()?
        .elapsed()
        .unwrap_or_default();
    if age > MARKER_LIFETIME {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(dir.join(RESTORE_FAILURES));
        return None;
    }
    let why = std::fs::read_to_string(&path).unwrap_or_default();
    Some(why.trim().to_string())
}

/// Records how an attempt ended: a lasting failure gets a marker; a failed restore discards
/// the state (the next run saves a new one) and, the second time running, gets a marker too.
fn settle<'s>(dir: &Path, r: Attempt<'s>) -> Result<Guest<'s>, Fallback<'s>> {
    match r {
        Ok(g) => {
            if g.warm {
                let _ = std::fs::remove_file(dir.join(RESTORE_FAILURES));
            }
            Ok(g)
        }
        Err((f, sink)) => {
            if f.lasting {
                let _ = std::fs::write(dir.join(FAILED), format!("{}\n", f.why));
            }
            Err((f.why, sink))
        }
    }
}

/// Removes a saved state that cannot be used (the lock file stays).
fn discard(dir: &Path) {
    for f in ["meta.json", "state", "initramfs.cpio", "used"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    // Its unpacked copies kept in memory too.
    let Some(key) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!("{}{key}-", kept_prefix());
    if let Ok(entries) = std::fs::read_dir(unpack_dir()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The saved state in `dir`: `None` when there is none (or it is incomplete), an error saying
/// what is wrong when it is damaged.
fn saved(dir: &Path) -> Option<Result<Meta, String>> {
    let meta = std::fs::read(dir.join("meta.json")).ok()?;
    let meta: Meta = match serde_json::from_slice(&meta) {
        Ok(m) => m,
        Err(e) => {
            return Some(Err(format!(
                "the saved VM state's meta.json is damaged ({e})"
            )))
        }
    };
    let state = std::fs::metadata(dir.join("state")).ok();
    let size = state.as_ref().map_or(0, |m| m.len());
    if size != meta.state_bytes {
        return Some(Err(format!(
            "the saved VM state {} is damaged ({size} bytes, {} when saved)",
            dir.join("state").display(),
            meta.state_bytes
        )));
    }
    dir.join("initramfs.cpio").is_file().then_some(Ok(meta))
}

fn restore<'s>(spec: &BootSpec, dir: &Path, meta: Meta, sink: Sink<'s>) -> Attempt<'s> {
    // When it was last used, for pruning.
    if let Ok(f) = std::fs::File::create(dir.join("used")) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    let mut guest = match Guest::launch(spec, dir.join("initramfs.cpio"), true, sink) {
        Ok(g) => g,
        Err((why, sink)) => return Err((Failure::passing(why), sink)),
    };
    let deadline = Instant::now() + spec.boot_deadline.min(Duration::from_secs(20));
    let state = dir.join("state");
    // A state QEMU cannot restore, or a guest that comes back otherwise than saved, is thrown
    // away (the next run saves a new one); twice running, the configuration is marked.
    let unusable = |guest: Guest<'s>, why: String| {
        let failures = std::fs::read_to_string(dir.join(RESTORE_FAILURES))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let _ = std::fs::write(dir.join(RESTORE_FAILURES), format!("{failures}\n"));
        discard(dir);
        let (why, sink) = guest.abandon(why);
        let f = Failure {
            why,
            lasting: failures >= 2,
            discarded: true,
        };
        Err((f, sink))
    };
    // A compressed state is unpacked into memory (`/dev/shm`) first: QEMU restores from a file
    // far faster than from a pipe.
    let unpacked = match meta.compression.as_deref() {
        None => None,
        Some("zstd") => {
            let Some(z) = zstd() else {
                let why = "the saved state is compressed with zstd, which is gone".to_string();
                return unusable(guest, why);
            };
            let tmp = unpack_dir();
            remove_orphan_unpacked(&tmp);
            // The unpacked copy is kept in memory for the next restores of this state.
            let name = std::fs::metadata(&state).ok().map(|m| kept_name(dir, &m));
            if let Some(kept) = name.as_deref().and_then(|n| use_kept(&tmp, n)) {
                Some(kept)
            } else {
                let out = tmp.join(format!("kmodlab-state-{}-{}", std::process::id(), seq()));
                if let Err(e) = decompress(&z, &state, &out) {
                    let why = format!("restoring {}: cannot unpack it: {e}", state.display());
                    return unusable(guest, why);
                }
                let unpacked = Unpacked(out);
                if let Some(name) = &name {
                    keep(&tmp, &unpacked, name, KEPT_UNPACKED_BYTES);
                }
                Some(unpacked)
            }
        }
        Some(other) => {
            let why = format!(
                "restoring {}: unknown compression {other:?}",
                state.display()
            );
            return unusable(guest, why);
        }
    };
    let source = unpacked.as_ref().map_or(&state, |u| &u.0);
    let uri = format!("file:{}", source.display());
    let restored = (|| -> std::io::Result<()> {
        let q = guest.vm.monitor(deadline)?;
        q.migration_events(deadline)?;
        q.execute("migrate-incoming", json!({ "uri": uri }), deadline)?;
        q.wait_migration(deadline)?;
        q.cont_after_migration(deadline)?;
        Ok(())
    })();
    drop(unpacked);
    if let Err(e) = restored {
        let f = Failure::qmp(&format!("restoring {}", state.display()), &e);
        if f.lasting {
            return unusable(guest, f.why);
        }
        let (why, sink) = guest.abandon(f.why);
        return Err((Failure::passing(why), sink));
    }
    // The agent was waiting for a request when the state was saved: it must answer now, on a
    // kernel as clean as then.
    match tainted(&mut guest, Duration::from_secs(5)) {
        Ok(t) if t == meta.tainted => {}
        Ok(t) => {
            let why = format!(
                "the restored kernel is tainted ({t}), not as saved ({})",
                meta.tainted
            );
            return unusable(guest, why);
        }
        Err(e) => {
            let (why, sink) = guest.abandon(e);
            return Err((Failure::passing(why), sink));
        }
    }
    if let Err(e) = put_files(&mut guest, spec) {
        let (why, sink) = guest.abandon(e);
        return Err((Failure::passing(why), sink));
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

fn save<'s>(spec: &BootSpec, dir: &Path, cpio: &[u8], sink: Sink<'s>) -> Attempt<'s> {
    let initrd = dir.join("initramfs.cpio");
    let tmp = dir.join("initramfs.cpio.tmp");
    if let Err(e) = std::fs::write(&tmp, cpio).and_then(|()| std::fs::rename(&tmp, &initrd)) {
        let _ = std::fs::remove_file(&tmp);
        return Err((Failure::passing(format!("{}: {e}", initrd.display())), sink));
    }
    let mut guest = match Guest::launch(spec, initrd, false, sink) {
        Ok(g) => g,
        Err((why, sink)) => return Err((Failure::passing(why), sink)),
    };
    let passing = |guest: Guest<'s>, why: String| {
        let (why, sink) = guest.abandon(why);
        Err((Failure::passing(why), sink))
    };
    if let Err(e) = guest.wait_ready(spec.boot_deadline) {
        return passing(guest, e);
    }
    let boot_s = guest.vm.elapsed_s();
    let tainted = match tainted(&mut guest, Duration::from_secs(10)) {
        Ok(t) => t,
        Err(e) => return passing(guest, e),
    };
    // Free pages zeroed are pages the state does not hold. A guest that cannot is saved as is.
    let zeroed = guest.request(&Request::ZeroFreeMemory, Duration::from_secs(30));
    if !matches!(
        zeroed,
        crate::guest::Step::Reply(Reply::Call {
            status: kmodlab_proto::CallStatus::Ok,
            ..
        })
    ) {
        if let crate::guest::Step::Gone(why) | crate::guest::Step::Broken(why) = zeroed {
            return passing(guest, why);
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let state_tmp = dir.join("state.tmp");
    let migrated = (|| -> std::io::Result<()> {
        let q = guest.vm.monitor(deadline)?;
        q.migration_events(deadline)?;
        q.execute("stop", Value::Null, deadline)?;
        let uri = format!("file:{}", state_tmp.display());
        q.execute("migrate", json!({ "uri": uri }), deadline)?;
        q.wait_migration(deadline)?;
        q.cont_after_migration(deadline)
    })();
    if let Err(e) = migrated {
        let _ = std::fs::remove_file(&state_tmp);
        let f = Failure::qmp("saving the VM state", &e);
        let (why, sink) = guest.abandon(f.why);
        return Err((Failure { why, ..f }, sink));
    }
    // The state first, its description last: a state without meta.json is not one.
    let written = (|| -> std::io::Result<u64> {
        let zstd = zstd();
        let saved = match &zstd {
            Some(z) => {
                let packed = dir.join("state.zst.tmp");
                compress(z, &state_tmp, &packed)?;
                packed
            }
            None => state_tmp.clone(),
        };
        let state_bytes = std::fs::metadata(&saved)?.len();
        std::fs::rename(&saved, dir.join("state"))?;
        let meta = Meta {
            kernel: guest.kernel.clone(),
            tainted,
            boot_s,
            state_bytes,
            compression: zstd.map(|_| "zstd".to_string()),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?;
        let tmp = dir.join("meta.json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, dir.join("meta.json"))?;
        Ok(state_bytes)
    })();
    let size = match written {
        Ok(n) => n,
        Err(e) => {
            discard(dir);
            let _ = std::fs::remove_file(&state_tmp);
            let _ = std::fs::remove_file(dir.join("state.zst.tmp"));
            return passing(guest, format!("saving the VM state: {e}"));
        }
    };
    if let Err(e) = put_files(&mut guest, spec) {
        return passing(guest, e);
    }
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
        crate::guest::Step::Timeout => Err(format!("the agent did not answer within {within:?}")),
        crate::guest::Step::Gone(why) | crate::guest::Step::Broken(why) => Err(why),
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
            userland: None,
            memory_mb: 512,
            run_dir: dir.join("run"),
            boot_deadline: Duration::from_secs(60),
            modules: Vec::new(),
            files: Vec::new(),
            kernel_args: Vec::new(),
            warm_dir: Some(dir.join("warm")),
            gdb_stub: false,
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
        // A gdb run's guest boots with `nokaslr`: never from a state saved with KASLR on. Its
        // gdb stub is no part of the state.
        let mut gdb = s.clone();
        gdb.kernel_args = vec!["nokaslr".into()];
        assert_ne!(rebuilt, key(&gdb, &cpio));
        let with_stub = key(&gdb, &cpio);
        gdb.gdb_stub = true;
        assert_eq!(with_stub, key(&gdb, &cpio));
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

    /// `n` states `state-0`.. in `dir`, each with a lock file, `state-0` used longest ago.
    fn old_states(dir: &Path, n: usize) {
        for i in 0..n {
            let d = dir.join(format!("state-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::File::create(d.join(".lock")).unwrap();
            std::fs::write(d.join("meta.json"), b"{}").unwrap();
            let t = UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(d.join("meta.json"))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }

    /// Kept unpacked states: the newest always, older ones while they fit in the budget; a
    /// kept one is used through a link of the process's own, and goes when its state is
    /// discarded.
    #[test]
    fn unpacked_states_are_kept_within_their_budget() {
        let tmp = std::env::temp_dir().join(format!("kmodlab-kept-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        const BUDGET: u64 = 1000;
        let half = (BUDGET / 2 + 1) as usize;
        let mut names = Vec::new();
        for i in 0..3 {
            let own = Unpacked(tmp.join(format!("kmodlab-state-{}-{}", std::process::id(), seq())));
            std::fs::write(&own.0, vec![0u8; half]).unwrap();
            let name = format!("{}key{i}-1-{i}", kept_prefix());
            keep(&tmp, &own, &name, BUDGET);
            drop(own);
            names.push(name);
            std::thread::sleep(Duration::from_millis(20));
        }
        let present: Vec<bool> = names.iter().map(|n| tmp.join(n).exists()).collect();
        // Two halves and a byte are over the budget: only the newest stays.
        assert_eq!(present, [false, false, true]);
        let used = use_kept(&tmp, &names[2]).expect("the kept state is there");
        assert_eq!(std::fs::metadata(&used.0).unwrap().len(), half as u64);
        assert!(use_kept(&tmp, &names[0]).is_none());
        drop(used);
        assert!(
            tmp.join(&names[2]).exists(),
            "the process's own link goes, the kept one stays"
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn the_guest_code_identity_is_found_whole_or_not_at_all() {
        let id = b"kmodlab-guest-code:0123456789abcdef0123456789abcdef\n";
        let mut binary = b"...kmodlab-guest-code:not hex here, kmodlab-guest-code:".to_vec();
        binary.extend_from_slice(id);
        binary.extend_from_slice(b"more code");
        assert_eq!(guest_code_identity(&binary), Some(&id[..]));
        assert_eq!(guest_code_identity(&binary[..binary.len() - 10]), None);
        assert_eq!(guest_code_identity(b"no marker at all"), None);
        assert_eq!(guest_code_identity(b""), None);
        let mut upper = id.to_vec();
        upper[20] = b'A';
        assert_eq!(guest_code_identity(&upper), None);
    }

    #[test]
    fn prune_keeps_the_most_recently_used_states() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        old_states(&dir, KEEP + 3);
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
    fn meta_json(state_bytes: u64) -> String {
        serde_json::to_string(&Meta {
            kernel: "6.12".into(),
            tainted: "0".into(),
            boot_s: 1.0,
            state_bytes,
            compression: None,
        })
        .unwrap()
    }

    /// Regression: a truncated state file was fed to QEMU, and its failure turned warm starts
    /// off for good; now its size gives it away before anything starts.
    #[test]
    fn states_unpacked_by_gone_processes_are_removed_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("kmodlab-unpacked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mine = dir.join(format!("kmodlab-state-{}-0", std::process::id()));
        // PIDs stay below 2^22 on Linux: this one is never alive.
        let gone = dir.join("kmodlab-state-4194305-3");
        let other = dir.join("unrelated-4194305");
        for f in [&mine, &gone, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        remove_orphan_unpacked(&dir);
        assert!(mine.exists() && other.exists());
        assert!(!gone.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_state_is_recognised_by_its_size() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-saved-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(saved(&dir).is_none(), "no state");
        std::fs::write(dir.join("state"), vec![7u8; 1000]).unwrap();
        std::fs::write(dir.join("initramfs.cpio"), b"cpio").unwrap();
        std::fs::write(dir.join("meta.json"), meta_json(1000)).unwrap();
        assert!(matches!(saved(&dir), Some(Ok(_))));
        std::fs::write(dir.join("state"), vec![7u8; 400]).unwrap();
        let why = saved(&dir).unwrap().unwrap_err();
        assert!(
            why.contains("damaged (400 bytes, 1000 when saved)"),
            "{why}"
        );
        std::fs::write(dir.join("meta.json"), b"{\"kernel\":").unwrap();
        assert!(saved(&dir).unwrap().is_err(), "a cut meta.json");
        discard(&dir);
        assert!(saved(&dir).is_none());
        assert!(!dir.join("state").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Only a refusal to migrate marks a configuration; a marker expires after a day.
    #[test]
    fn only_lasting_failures_mark_a_configuration_and_marks_expire() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-mark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "QMP: no answer in time");
        let race = crate::qmp::Refused {
            command: "cont".into(),
            desc: "Migration is not finalized yet".into(),
        };
        let refused = crate::qmp::Refused {
            command: "migrate".into(),
            desc: "file migration is not supported".into(),
        };
        assert!(!Failure::qmp("saving", &timeout).lasting);
        assert!(!Failure::qmp("saving", &std::io::Error::other(race)).lasting);
        let f = Failure::qmp("saving", &std::io::Error::other(refused));
        assert!(f.lasting);
        assert!(f.why.contains("QMP migrate: file migration"), "{}", f.why);

        let mut events = 0;
        let mut sink = |_: &Event| events += 1;
        let r = settle(&dir, Err((Failure::passing("slow".into()), &mut sink)));
        assert!(r.is_err());
        assert_eq!(
            failed_marker(&dir),
            None,
            "a passing failure leaves no marker"
        );
        let mut sink = |_: &Event| {};
        let _ = settle(&dir, Err((f, &mut sink)));
        let why = failed_marker(&dir).expect("marked");
        assert!(why.contains("file migration is not supported"), "{why}");
        let old = std::time::SystemTime::now() - Duration::from_secs(25 * 3600);
        std::fs::File::options()
            .write(true)
            .open(dir.join(FAILED))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(failed_marker(&dir), None, "a day-old marker has expired");
        assert!(!dir.join(FAILED).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A state another kmodlab is restoring (it holds the state's lock shared) is never pruned,
    /// however old.
    #[test]
    fn a_state_in_use_is_never_pruned() {
        let dir = std::env::temp_dir().join(format!("kmodlab-warm-inuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        old_states(&dir, KEEP + 2);
        // The oldest is being restored.
        let held = std::fs::File::open(dir.join("state-0/.lock")).unwrap();
        held.lock_shared().unwrap();
        prune(&dir);
        assert!(dir.join("state-0").exists(), "in use: kept");
        assert!(!dir.join("state-1").exists(), "unused and old: pruned");
        drop(held);
        prune(&dir);
        assert!(!dir.join("state-0").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
