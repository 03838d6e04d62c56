//! depmod's cache of what it read from each module, so that a run after a few modules changed
//! reads only those.
//!
//! Where: one file per module directory, `DIR/tree-HASH.cache`, where DIR is
//! `$KMODLAB_DEPMOD_CACHE` when set (`off` disables the cache), else
//! `$XDG_CACHE_HOME/kmodlab/depmod`, else `$HOME/.cache/kmodlab/depmod`, and HASH is the FNV-1a
//! hash of the module directory's path. It is kept out of the module directory on purpose:
//! depmod's outputs there stay exactly kmod's.
//!
//! An entry is used only when the file's path, device, inode, size and modification time (to
//! the nanosecond) are all unchanged; it holds what depmod needs from the module (exports,
//! needed symbols, `alias`/`softdep` entries) or the messages reading it produced. The file is
//! rewritten (to a temporary name, then renamed) whenever a module was read. Any problem with
//! the cache (missing, unreadable, from another kmodlab version, corrupt) just means every
//! module is read; it is never an error.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use kmodlab_modindex::depmod::{Need, Symbol};
use kmodlab_modindex::{Diagnostic, Level};

use super::Loaded;

/// Changes whenever the format or what is stored changes.
const MAGIC: &[u8; 16] = b"kmodlab-depmod-4";

/// What identifies a module file's contents without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    pub fn of(meta: &fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
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

/// Reads the cache file; empty on any problem.
pub fn load(file: &std::path::Path) -> Entries {
    let Ok(bytes) = fs::read(file) else {
        return Entries::new();
    };
    decode(&bytes).unwrap_or_default()
}

/// Writes the cache file (best effort: failures are ignored).
pub fn save(file: &std::path::Path, entries: &[(&[u8], Identity, &Loaded)]) {
    let bytes = encode(entries);
    let Some(dir) = file.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let written = fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
    if written.is_err() || fs::rename(&tmp, file).is_err() {
        let _ = fs::remove_file(&tmp);
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

fn encode(entries: &[(&[u8], Identity, &Loaded)]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1 << 20));
    w.0.extend_from_slice(MAGIC);
    w.u64(entries.len() as u64);
    for (path, id, loaded) in entries {
        w.bytes(path);
        for v in [
            id.dev,
            id.ino,
            id.size,
            id.mtime as u64,
            id.mtime_nsec as u64,
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

fn decode(bytes: &[u8]) -> Option<Entries> {
    let mut r = Reader { data: bytes };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let count = r.u64()? as usize;
    if count > bytes.len() / 64 {
        return None;
    }
    let mut entries = Entries::with_capacity(count);
    for _ in 0..count {
        let path = r.bytes()?.to_vec();
        let id = Identity {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_nsec: r.u64()? as i64,
        };
        let mut loaded = Loaded::default();
        for _ in 0..r.count(5)? {
            let level = match r.u8()? {
                0 => Level::Fatal,
                1 => Level::Error,
                2 => Level::Warning,
                _ => Level::Info,
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
            let weak = r.u8()? != 0;
            loaded.needs.push(Need { name, crc, weak });
        }
        for _ in 0..r.count(8)? {
            let key = r.bytes()?.to_vec();
            let value = r.bytes()?.to_vec();
            loaded.modinfo.push((key, value));
        }
        entries.insert(path, (id, loaded));
    }
    r.data.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let loaded = Loaded {
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
            modinfo: vec![(b"alias".to_vec(), b"x".to_vec())],
        };
        let id = Identity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: 4,
            mtime_nsec: 5,
        };
        let bytes = encode(&[(b"/m.ko", id, &loaded)]);
        let entries = decode(&bytes).unwrap();
        assert_eq!(entries[&b"/m.ko"[..]], (id, loaded));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none());
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            let _ = decode(&bad);
        }
    }
}
