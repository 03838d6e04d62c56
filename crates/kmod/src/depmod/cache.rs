//! depmod's cache of what it read from each module, so that a run after a few modules changed
//! reads only those.
//!
//! # Where
//!
//! One file per module directory, `DIR/tree-HASH.cache`, where DIR is `$KMODLAB_DEPMOD_CACHE`
//! when set (`off` disables the cache), else `$XDG_CACHE_HOME/kmodlab/depmod`, else
//! `$HOME/.cache/kmodlab/depmod`, and HASH is the FNV-1a hash of the module directory's path.
//! It is kept out of the module directory on purpose: depmod's outputs there stay exactly kmod's.
//! DIR also holds `mac.key`, the user's secret (below).
//!
//! An entry is used only when the file's path, device, inode, size, modification time and
//! status-change time (both to the nanosecond) are all unchanged; it holds what depmod needs
//! from the module (exports, needed symbols, `alias`/`softdep` entries) or the messages reading
//! it produced. The file is rewritten whenever a module was read. Any problem with the cache
//! (missing, unreadable, untrusted, from another kmodlab version, corrupt) just means every
//! module is read; it is never an error.
//!
//! # Why a cache cannot change depmod's outputs, even as root
//!
//! depmod usually runs as root, and what it writes (`modules.alias`, `modules.softdep`, ...)
//! decides what modprobe loads. So the cache is built to give nobody but the user running depmod
//! a say in those outputs, and to make depmod write nowhere but in its own directory:
//!
//! - **The directory** is reached from `/` one component at a time, each opened with
//!   `O_NOFOLLOW` relative to the one before, missing ones made with mode 0700. Every directory
//!   on the way must be owned by root or by the effective user and be writable by neither group
//!   nor others, unless it is sticky (`/tmp`); DIR itself must be owned by the effective user and
//!   writable by neither group nor others. A symbolic link on the way is followed only when root
//!   or the effective user owns it (and it sits in a directory that passed the same checks).
//!   Anything else turns the cache off for the run: nothing read, nothing written. Every later
//!   access is relative to the open directory (`openat`, `renameat`, `linkat`), so a path
//!   changed after the check changes nothing.
//! - **Writing**: the new contents go to a temporary file (`tree-HASH.tmp.PID`, then `.1`, `.2`
//!   ... after it when that name is taken) created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode
//!   0600, which is then renamed over the cache file. A symbolic link (or anything else) at a
//!   temporary name is never opened, and the rename replaces a link at the cache's name instead
//!   of writing through it.
//! - **Reading**: the cache file is opened with `O_NOFOLLOW` and used only when it is a regular
//!   file owned by the effective user that neither group nor others can write. Otherwise it is
//!   ignored: every module is read, and the file is replaced by a file of ours.
//! - **Contents**: the file carries a MAC, BLAKE3 in keyed mode, of the module directory's path
//!   and of every byte of its entries, under a 32-byte random secret: `mac.key` in DIR, made on
//!   the first save, mode 0600, and used only when the effective user owns it and nobody else
//!   can read or write it (a bad one is replaced, which voids every cache made under it). A file
//!   whose MAC does not check is ignored whole. So every entry used was written by a depmod run
//!   of this user, which stored what it had just read from the module file with that identity;
//!   a forged entry, even one naming a module file's true identity, needs the secret, which only
//!   this user (and root) can read, and they can change the modules themselves anyway. A cache
//!   copied from elsewhere, restored, edited or written by another user adds no alias, softdep,
//!   export, needed symbol or message. The decoder also refuses `.modinfo` keys other than
//!   `alias` and `softdep`, and it is fuzzed (`fuzz/fuzz_targets/depmod_cache.rs`).
//! - **Identity** includes the status-change time, which a file's owner cannot set (a write, a
//!   rename, a `chmod` or a `touch` all update it): a module rewritten in place with its size and
//!   modification time restored, or a new file that got an old inode number back, is read again,
//!   not matched to an entry about older contents.
//!
//! None of this reads a module: a warm run still reads the cache file (8 MB for Debian's 4,228
//! modules; the MAC is one BLAKE3 pass over it, a few milliseconds) and stats the modules.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use kmodlab_modindex::depmod::{Need, Symbol};
use kmodlab_modindex::{Diagnostic, Level};
use kmodlab_sys::at;

use super::Loaded;

/// Changes whenever the format or what is stored changes.
const MAGIC: &[u8; 16] = b"kmodlab-depmod-6";

/// The length of the MAC after the magic.
const MAC_LEN: usize = 32;

/// The user's secret, in the cache directory.
const KEY_FILE: &str = "mac.key";

/// At most this many symbolic links are followed on the way to the cache directory.
const MAX_LINKS: usize = 40;

/// What identifies a module file's contents without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    pub fn of(meta: &fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }
}

/// The cache file for module directory `dirname`; `None` when the cache is off or there is
/// nowhere to put it.
pub fn location(dirname: &[u8]) -> Option<PathBuf> {
    let dir = match std::env::var_os("KMODLAB_DEPMOD_CACHE") {
        Some(dir) if dir == "off" || dir.is_empty() => return None,
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("kmodlab/depmod"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/kmodlab/depmod"),
        },
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in dirname {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(dir.join(format!("tree-{hash:016x}.cache")))
}

/// The cached entries, by path.
pub type Entries = HashMap<Vec<u8>, (Identity, Loaded)>;

/// The cache of one module directory, in a directory that passed the checks.
pub struct Cache {
    dir: File,
    name: OsString,
    dirname: Vec<u8>,
}

impl Cache {
    /// The cache of module directory `dirname` where the environment puts it; `None` when the
    /// cache is off or its directory is not to be trusted.
    pub fn open(dirname: &[u8]) -> Option<Cache> {
        Cache::at(&location(dirname)?, dirname)
    }

    /// The cache file `file` (its directory made when missing), for module directory
    /// `dirname`; `None` when that directory is not to be trusted.
    pub fn at(file: &Path, dirname: &[u8]) -> Option<Cache> {
        let dir = open_trusted_dir(file.parent()?)?;
        Some(Cache {
            dir,
            name: file.file_name()?.to_os_string(),
            dirname: dirname.to_vec(),
        })
    }

    /// The entries of the cache file; empty when it is missing, untrusted, not ours (MAC) or
    /// corrupt.
    pub fn load(&self) -> Entries {
        self.verified()
            .and_then(|bytes| decode(&bytes[MAGIC.len() + MAC_LEN..]))
            .unwrap_or_default()
    }

    /// The cache file's bytes, when it is a file of ours whose MAC checks.
    fn verified(&self) -> Option<Vec<u8>> {
        let bytes = read_owned(&self.dir, &self.name, 0o022)?;
        let key = self.key(false)?;
        let mac = bytes.get(MAGIC.len()..MAGIC.len() + MAC_LEN)?;
        if &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let body = &bytes[MAGIC.len() + MAC_LEN..];
        let mac: [u8; MAC_LEN] = mac.try_into().ok()?;
        // blake3::Hash compares in constant time.
        (self.mac(&key, body) == mac).then_some(bytes)
    }

    fn mac(&self, key: &[u8; 32], body: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(MAGIC);
        hasher.update(&(self.dirname.len() as u64).to_le_bytes());
        hasher.update(&self.dirname);
        hasher.update(body);
        hasher.finalize()
    }

    /// Writes the cache file (best effort: failures are ignored).
    pub fn save(&self, entries: &[(&[u8], Identity, &Loaded)]) {
        let Some(key) = self.key(true) else { return };
        let body = encode(entries);
        let mut bytes = Vec::with_capacity(MAGIC.len() + MAC_LEN + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(self.mac(&key, &body).as_bytes());
        bytes.extend_from_slice(&body);
        let _ = install(&self.dir, &self.name, &bytes, Install::Replace);
    }

    /// The user's secret; with `create`, made (or replaced, when the one there is not to be
    /// trusted) when needed.
    fn key(&self, create: bool) -> Option<[u8; 32]> {
        let name = OsStr::new(KEY_FILE);
        let read = || -> Option<[u8; 32]> { read_owned(&self.dir, name, 0o077)?.try_into().ok() };
        if let Some(key) = read() {
            return Some(key);
        }
        if !create {
            return None;
        }
        let mut key = [0u8; 32];
        at::random_bytes(&mut key).ok()?;
        // No file there: install ours unless another run got there first (then use its key).
        // A file there that is not to be trusted: replace it.
        let how = match at::open_path(&self.dir, name) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Install::NoReplace,
            _ => Install::Replace,
        };
        match install(&self.dir, name, &key, how) {
            Ok(()) => Some(key),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => read(),
            Err(_) => None,
        }
    }
}

/// The contents of the file `name` in `dir`, when it is a regular file (not a link) that the
/// effective user owns and whose mode has none of the bits of `forbidden`.
fn read_owned(dir: &File, name: &OsStr, forbidden: u32) -> Option<Vec<u8>> {
    let mut file = at::open_file(dir, name).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != at::effective_uid() || meta.mode() & forbidden != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// How [`install`] puts the new file in place.
#[derive(Clone, Copy)]
enum Install {
    /// Renamed over whatever is there.
    Replace,
    /// Linked to the name, failing with `EEXIST` when something is there.
    NoReplace,
}

/// Writes `bytes` to a new temporary file in `dir` (exclusive creation, no link followed, mode
/// 0600) and puts it in place as `name`.
fn install(dir: &File, name: &OsStr, bytes: &[u8], how: Install) -> io::Result<()> {
    // `tree-HASH.cache` is written as `tree-HASH.tmp.PID` (as before these checks, so that a
    // stale one is simply skipped), then `.1`, `.2`, ... when that name is taken.
    let base = Path::new(name).with_extension(format!("tmp.{}", std::process::id()));
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let mut tmp = base.clone().into_os_string();
        if attempt > 0 {
            tmp.push(format!(".{attempt}"));
        }
        match at::create_new(dir, &tmp, 0o600) {
            Ok(file) => break (tmp, file),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = file.write_all(bytes).and_then(|()| match how {
        Install::Replace => at::rename(dir, &tmp, name),
        Install::NoReplace => at::hard_link(dir, &tmp, name),
    });
    if result.is_err() || matches!(how, Install::NoReplace) {
        let _ = at::remove_file(dir, &tmp);
    }
    result
}

/// Opens the directory `path` (made, mode 0700, where missing) after checking every directory
/// on the way, as the module documentation says; `None` when one is not to be trusted.
fn open_trusted_dir(path: &Path) -> Option<File> {
    let euid = at::effective_uid();
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    // On the way: owned by root or us; written only by its owner, or sticky.
    let passable = |dir: &File| {
        dir.metadata().is_ok_and(|m| {
            (m.uid() == 0 || m.uid() == euid) && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0)
        })
    };
    // The end: ours, written only by us.
    let own = |dir: &File| {
        dir.metadata()
            .is_ok_and(|m| m.uid() == euid && m.mode() & 0o022 == 0)
    };
    let root = File::open("/").ok()?;
    if !passable(&root) {
        return None;
    }
    // The directories opened so far (the last is the current one) and the components still to
    // walk, the next one last.
    let mut dirs = vec![root];
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, &path);
    let (mut links, mut made) = (0, 0);
    while let Some(name) = todo.pop() {
        if name == ".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let parent = dirs.last()?;
        match at::open_dir(parent, &name) {
            Ok(dir) => {
                if !passable(&dir) {
                    return None;
                }
                dirs.push(dir);
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) if made < 64 => {
                    made += 1;
                    match at::make_dir(parent, &name, 0o700) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(_) => return None,
                    }
                    todo.push(name);
                }
                Some(libc::ELOOP | libc::ENOTDIR) if links < MAX_LINKS => {
                    links += 1;
                    let link = at::open_path(parent, &name).ok()?;
                    let meta = link.metadata().ok()?;
                    if !meta.file_type().is_symlink() || (meta.uid() != 0 && meta.uid() != euid) {
                        return None;
                    }
                    let target = PathBuf::from(at::read_link(&link).ok()?);
                    if target.is_absolute() {
                        dirs.truncate(1);
                    }
                    push_components(&mut todo, &target);
                }
                _ => return None,
            },
        }
    }
    let dir = dirs.pop()?;
    own(&dir).then_some(dir)
}

/// Pushes the components of `path` on `todo`, the first one last; `..` is kept, `.` dropped.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    for component in path.components().rev() {
        match component {
            Component::Normal(name) => todo.push(name.to_os_string()),
            Component::ParentDir => todo.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// The entries, as they follow the magic and the MAC in the file.
fn encode(entries: &[(&[u8], Identity, &Loaded)]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1 << 20));
    w.u64(entries.len() as u64);
    for (path, id, loaded) in entries {
        w.bytes(path);
        for v in [
            id.dev,
            id.ino,
            id.size,
            id.mtime as u64,
            id.mtime_nsec as u64,
            id.ctime as u64,
            id.ctime_nsec as u64,
        ] {
            w.u64(v);
        }
        w.u32(loaded.messages.len() as u32);
        for m in &loaded.messages {
            w.0.push(match m.level {
                Level::Fatal => 0,
                Level::Error => 1,
                Level::Warning => 2,
                Level::Info => 3,
            });
            w.bytes(m.message.as_bytes());
        }
        w.u32(loaded.exports.len() as u32);
        for s in &loaded.exports {
            w.bytes(&s.name);
            w.u64(s.crc);
        }
        w.u32(loaded.needs.len() as u32);
        for n in &loaded.needs {
            w.bytes(&n.name);
            w.u64(n.crc);
            w.0.push(u8::from(n.weak));
        }
        w.u32(loaded.modinfo.len() as u32);
        for (k, v) in &loaded.modinfo {
            w.bytes(k);
            w.bytes(v);
        }
    }
    w.0
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A count of items each at least `min` bytes long, checked against what is left.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n <= self.data.len() / min).then_some(n)
    }
}

/// The entries [`encode`] wrote; `None` for anything it cannot have written.
fn decode(bytes: &[u8]) -> Option<Entries> {
    let mut r = Reader { data: bytes };
    let count = r.u64()?;
    // Each entry takes at least 76 bytes: a path length, 7 identity words, 4 counts.
    if count > (bytes.len() / 76) as u64 {
        return None;
    }
    let mut entries = Entries::with_capacity(count as usize);
    for _ in 0..count {
        let path = r.bytes()?.to_vec();
        let id = Identity {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_nsec: r.u64()? as i64,
            ctime: r.u64()? as i64,
            ctime_nsec: r.u64()? as i64,
        };
        let mut loaded = Loaded::default();
        for _ in 0..r.count(5)? {
            let level = match r.u8()? {
                0 => Level::Fatal,
                1 => Level::Error,
                2 => Level::Warning,
                3 => Level::Info,
                _ => return None,
            };
            let message = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            loaded.messages.push(Diagnostic::new(level, message));
        }
        let n = r.count(12)?;
        loaded.exports.reserve(n);
        for _ in 0..n {
            let name = r.bytes()?.to_vec();
            loaded.exports.push(Symbol {
                name,
                crc: r.u64()?,
            });
        }
        let n = r.count(13)?;
        loaded.needs.reserve(n);
        for _ in 0..n {
            let name = r.bytes()?.to_vec();
            let crc = r.u64()?;
            let weak = match r.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            loaded.needs.push(Need { name, crc, weak });
        }
        for _ in 0..r.count(8)? {
            let key = r.bytes()?;
            // depmod keeps no other `.modinfo` entries.
            if key != b"alias" && key != b"softdep" {
                return None;
            }
            let value = r.bytes()?.to_vec();
            loaded.modinfo.push((key.to_vec(), value));
        }
        entries.insert(path, (id, loaded));
    }
    r.data.is_empty().then_some(entries)
}

/// The decoder on arbitrary bytes (the entries part of a cache file, no MAC), for the fuzz
/// target: when they decode, the entries are encoded again, and that must decode to the same
/// entries. Returns how many entries there were.
pub fn check_decoder(bytes: &[u8]) -> Option<usize> {
    let entries = decode(bytes)?;
    let list: Vec<(&[u8], Identity, &Loaded)> = entries
        .iter()
        .map(|(path, (id, loaded))| (&path[..], *id, loaded))
        .collect();
    let again = decode(&encode(&list));
    assert!(
        again.as_ref() == Some(&entries),
        "the depmod cache encoder and decoder disagree"
    );
    Some(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn sample() -> Loaded {
        Loaded {
            messages: vec![Diagnostic::new(Level::Error, "xz: File is corrupt\n")],
            exports: vec![Symbol {
                name: b"e".to_vec(),
                crc: 7,
            }],
            needs: vec![Need {
                name: b"n".to_vec(),
                crc: 9,
                weak: true,
            }],
            modinfo: vec![(b"alias".to_vec(), b"pci:v0000AAAAd*".to_vec())],
        }
    }

    const ID: Identity = Identity {
        dev: 1,
        ino: 2,
        size: 3,
        mtime: 4,
        mtime_nsec: 5,
        ctime: 6,
        ctime_nsec: 7,
    };

    /// A fresh directory under the system's temporary directory, mode 0700.
    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kmodlab-depmod-cache-unit-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    fn is_root() -> bool {
        at::effective_uid() == 0
    }

    /// A cache at `dir/tree.cache` holding the sample entry, saved and so MAC'd with the
    /// directory's key.
    fn saved(dir: &Path) -> Cache {
        let cache = Cache::at(&dir.join("tree.cache"), b"/lib/modules/x").unwrap();
        let loaded = sample();
        cache.save(&[(b"/m.ko", ID, &loaded)]);
        assert_eq!(cache.load().len(), 1);
        cache
    }

    #[test]
    fn round_trip_and_corruption() {
        let loaded = sample();
        let bytes = encode(&[(b"/m.ko", ID, &loaded)]);
        let entries = decode(&bytes).unwrap();
        assert_eq!(entries[&b"/m.ko"[..]], (ID, loaded));
        assert_eq!(check_decoder(&bytes), Some(1));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none());
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            let _ = check_decoder(&bad);
        }
    }

    /// Only `alias` and `softdep` can come out of a cache, whatever it says.
    #[test]
    fn decoder_refuses_other_modinfo_keys() {
        let mut loaded = sample();
        loaded.modinfo = vec![(b"softdep".to_vec(), b"pre: x".to_vec())];
        assert!(decode(&encode(&[(b"/m.ko", ID, &loaded)])).is_some());
        loaded.modinfo = vec![(b"install".to_vec(), b"/bin/sh".to_vec())];
        assert!(decode(&encode(&[(b"/m.ko", ID, &loaded)])).is_none());
    }

    /// A cache whose entries were changed, or MAC'd with another key, or made for another
    /// module directory, is ignored whole; the key is private.
    #[test]
    fn only_caches_made_with_the_users_key_are_used() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp("mac");
        let cache = saved(&dir);
        let file = dir.join("tree.cache");
        let key = dir.join(KEY_FILE);
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        let good = fs::read(&file).unwrap();

        // One alias rewritten, in place.
        let mut forged = good.clone();
        let at = forged.windows(4).position(|w| w == b"AAAA").unwrap();
        forged[at..at + 4].copy_from_slice(b"EEEE");
        fs::write(&file, &forged).unwrap();
        assert!(cache.load().is_empty());

        // Well-formed entries under a MAC made with another key.
        let other = Cache::at(&file, b"/lib/modules/x").unwrap();
        let body = &forged[MAGIC.len() + MAC_LEN..];
        let mut remade = MAGIC.to_vec();
        remade.extend_from_slice(other.mac(&[7; 32], body).as_bytes());
        remade.extend_from_slice(body);
        fs::write(&file, &remade).unwrap();
        assert!(cache.load().is_empty());

        // The right MAC, for another module directory.
        fs::write(&file, &good).unwrap();
        assert_eq!(cache.load().len(), 1);
        let elsewhere = Cache::at(&file, b"/lib/modules/y").unwrap();
        assert!(elsewhere.load().is_empty());

        // A key others can read is no secret: not used, and replaced at the next save.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache.load().is_empty());
        let before = fs::read(&key).unwrap();
        saved(&dir);
        assert_ne!(fs::read(&key).unwrap(), before);
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A cache file (whose MAC checks) is used only when it is a regular file of ours that
    /// neither group nor others can write. Needs root for the file of another user; the suite
    /// runs as root.
    #[test]
    fn untrusted_cache_files_are_ignored() {
        let dir = temp("files");
        let cache = saved(&dir);
        let file = dir.join("tree.cache");
        for mode in [0o666, 0o620, 0o602] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            assert!(cache.load().is_empty(), "mode {mode:o}");
        }
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cache.load().len(), 1);
        if is_root() {
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            assert!(cache.load().is_empty());
            std::os::unix::fs::chown(&file, Some(0), None).unwrap();
            assert_eq!(cache.load().len(), 1);
        } else {
            kmodlab_testkit::skip("root (for a cache file of another user)");
        }
        // The same good file reached through a link.
        fs::rename(&file, dir.join("real.cache")).unwrap();
        symlink("real.cache", &file).unwrap();
        assert!(cache.load().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Saving never writes through a link at the temporary name or at the cache's name.
    #[test]
    fn save_never_writes_through_links() {
        let dir = temp("save");
        let cache = saved(&dir);
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let tmp = format!("tree.tmp.{}", std::process::id());
        symlink(&victim, dir.join(&tmp)).unwrap();
        symlink(&victim, dir.join(format!("{tmp}.1"))).unwrap();
        fs::remove_file(dir.join("tree.cache")).unwrap();
        symlink(&victim, dir.join("tree.cache")).unwrap();
        let loaded = sample();
        cache.save(&[(b"/m.ko", ID, &loaded)]);
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(dir.join("tree.cache"))
            .unwrap()
            .is_file());
        assert!(fs::symlink_metadata(dir.join(&tmp))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(cache.load().len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The directory checks. Needs root for directories and links of another user; the suite
    /// runs as root.
    #[test]
    fn untrusted_directories_turn_the_cache_off() {
        let top = temp("dirs");
        let at = |path: &Path| Cache::at(&path.join("tree.cache"), b"/x").is_some();
        // Made when missing, 0700, several levels deep; then found again.
        let deep = top.join("a/b/c");
        assert!(at(&deep));
        assert!(at(&deep));
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(fs::metadata(top.join("a")).unwrap().mode() & 0o777, 0o700);
        }
        // The end or a directory on the way writable by others (not sticky): off.
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!at(&deep));
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            !at(&deep),
            "the end must be written only by us, sticky or not"
        );
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!at(&deep));
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(at(&deep), "a sticky directory on the way is fine");
        fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        // Our own links are followed, relative ones and `..` included.
        symlink("a/b", top.join("ours")).unwrap();
        assert!(at(&top.join("ours/c")));
        assert!(at(&top.join("ours/../b/./c")));
        // A file where a directory should be.
        fs::write(top.join("file"), b"").unwrap();
        assert!(!at(&top.join("file/x")));
        // A loop of links.
        symlink("loop2", top.join("loop1")).unwrap();
        symlink("loop1", top.join("loop2")).unwrap();
        assert!(!at(&top.join("loop1")));
        if !is_root() {
            kmodlab_testkit::skip("root (for directories and links of another user)");
            let _ = fs::remove_dir_all(&top);
            return;
        }
        let chown = |p: &Path| std::os::unix::fs::lchown(p, Some(65534), Some(65534)).unwrap();
        chown(&deep);
        assert!(!at(&deep), "the end is another user's");
        std::os::unix::fs::chown(&deep, Some(0), Some(0)).unwrap();
        chown(&top.join("a"));
        assert!(!at(&deep), "a directory on the way is another user's");
        std::os::unix::fs::chown(top.join("a"), Some(0), Some(0)).unwrap();
        assert!(at(&deep));
        chown(&top.join("ours"));
        assert!(!at(&top.join("ours/c")), "a link of another user");
        let _ = fs::remove_dir_all(&top);
    }
}
