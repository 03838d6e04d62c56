//! Opening a module file as libkmod does (`kmod_file_open`, `libkmod/libkmod-file.c` of kmod
//! 30), for the module tools that must behave like kmod's.
//!
//! The compression is told by the first bytes only, among the formats the libkmod build knows
//! ([`Compressions`]); a file in any other format is read as it is. What libkmod's decoders
//! accept and refuse is reproduced, and every failure is the errno value libkmod returns:
//!
//! - a file shorter than the longest magic of the known formats (6 bytes when xz is one of
//!   them) is `EINVAL`, whatever it holds;
//! - xz: liblzma with `LZMA_CONCATENATED`, so stream padding (zero bytes, a multiple of 4)
//!   after the stream is accepted;
//! - gzip: the magic is `1F 8B`; zlib then refuses a compression method other than deflate;
//! - zstd: libkmod's streaming loop over libzstd, which takes a stream that simply ends early
//!   (between or inside blocks) as what its complete blocks decode to (see
//!   [`crate::compression`]'s frame walker);
//! - any decoding failure is `EINVAL` (libkmod means to log why, but it has no context to log
//!   with at that point).
//!
//! [`crate::decompress`] is the strict decoder (one whole stream, nothing after it) for
//! modules kmodlab builds and checks.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use libc::{EINVAL, EIO};

use crate::compression::{
    decompress, decompress_zstd_like_libzstd, detect_compression, Compression, GZIP_MAGIC,
    XZ_MAGIC, ZSTD_MAGIC,
};

/// The compressed formats a libkmod build reads (its `ENABLE_ZSTD`, `ENABLE_XZ` and
/// `ENABLE_ZLIB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compressions {
    /// zstd (`28 B5 2F FD`).
    pub zstd: bool,
    /// xz (`FD 37 7A 58 5A 00`).
    pub xz: bool,
    /// gzip (`1F 8B`).
    pub gzip: bool,
}

impl Compressions {
    /// All three: what every kmodlab module tool reads (kmod 30 built with zlib).
    pub const ALL: Compressions = Compressions {
        zstd: true,
        xz: true,
        gzip: true,
    };

    /// zstd and xz: kmod 30 as Debian builds it (without zlib), whose tools take a gzip file
    /// for an ELF image.
    pub const DEBIAN: Compressions = Compressions {
        zstd: true,
        xz: true,
        gzip: false,
    };

    /// libkmod's magic of each known format (gzip's is only `1F 8B`: zlib checks the method).
    fn magics(self) -> impl Iterator<Item = (Compression, &'static [u8])> {
        [
            (self.zstd, Compression::Zstd, ZSTD_MAGIC),
            (self.xz, Compression::Xz, XZ_MAGIC),
            (self.gzip, Compression::Gzip, &GZIP_MAGIC[..2]),
        ]
        .into_iter()
        .filter(|&(known, _, _)| known)
        .map(|(_, compression, magic)| (compression, magic))
    }

    /// How a file starting with `head` is compressed, as libkmod tells: it reads as many bytes
    /// as the longest magic it knows, and a file that has fewer is `EINVAL`.
    pub fn identify(self, head: &[u8]) -> Result<Compression, i32> {
        let longest = self.magics().map(|(_, magic)| magic.len()).max();
        if longest.is_some_and(|longest| head.len() < longest) {
            return Err(EINVAL);
        }
        Ok(self
            .magics()
            .find(|(_, magic)| head.starts_with(magic))
            .map_or(Compression::None, |(compression, _)| compression))
    }
}

/// The uncompressed image of the module file `bytes`, as libkmod loads it: borrowed when the
/// file is not compressed in one of `compressions`. `EINVAL` when the file is too short to
/// tell or cannot be decompressed.
pub fn load(bytes: &[u8], compressions: Compressions) -> Result<Cow<'_, [u8]>, i32> {
    match compressions.identify(bytes)? {
        Compression::None => Ok(Cow::Borrowed(bytes)),
        compression => decompress_like_libkmod(bytes, compression).map(Cow::Owned),
    }
}

/// Decodes `bytes`, which start with `compression`'s magic, the way libkmod's decoder for it
/// does.
fn decompress_like_libkmod(bytes: &[u8], compression: Compression) -> Result<Vec<u8>, i32> {
    let decoded = match compression {
        Compression::None => return Ok(bytes.to_vec()),
        Compression::Zstd => decompress_zstd_like_libzstd(bytes),
        Compression::Xz => {
            // liblzma with LZMA_CONCATENATED accepts stream padding (zero bytes, a multiple
            // of 4).
            let mut end = bytes.len();
            while end >= 4 && bytes[end - 4..end] == [0; 4] {
                end -= 4;
            }
            decompress(&bytes[..end]).map(Cow::into_owned)
        }
        Compression::Gzip => {
            if detect_compression(bytes) != Compression::Gzip {
                // zlib refuses a compression method other than deflate.
                return Err(EINVAL);
            }
            decompress(bytes).map(Cow::into_owned)
        }
    };
    decoded.map_err(|_| EINVAL)
}

/// A module file, opened and read as libkmod's `kmod_file_open` opens it: its bytes and how
/// they are compressed.
#[derive(Debug)]
pub struct ModuleFile {
    file: std::fs::File,
    bytes: Vec<u8>,
    compression: Compression,
}

impl ModuleFile {
    /// Opens and reads the file at `path`, and tells its compression among `compressions`.
    ///
    /// Errors are errno values: the ones opening or reading gives (`ENOENT`, `EACCES`,
    /// `EISDIR`, ...); `EINVAL` for what is neither a regular file nor a directory (libkmod
    /// maps an uncompressed file with the size `fstat` gives, and that is 0) and for a file
    /// too short to tell its compression ([`Compressions::identify`]).
    pub fn open(path: &Path, compressions: Compressions) -> Result<ModuleFile, i32> {
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(EIO);
        let mut file = std::fs::File::open(path).map_err(errno)?;
        let kind = file.metadata().map_err(errno)?.file_type();
        if !kind.is_file() && !kind.is_dir() {
            return Err(EINVAL);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(errno)?;
        let compression = compressions.identify(&bytes)?;
        Ok(ModuleFile {
            file,
            bytes,
            compression,
        })
    }

    /// The open file (for `finit_module`).
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// How the file is compressed ([`Compression::None`] also for a format the libkmod build
    /// does not know).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The file's bytes, as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The uncompressed image (the bytes themselves when the file is not compressed); `EINVAL`
    /// when it cannot be decompressed.
    pub fn into_image(self) -> Result<Vec<u8>, i32> {
        match self.compression {
            Compression::None => Ok(self.bytes),
            compression => decompress_like_libkmod(&self.bytes, compression),
        }
    }
}

/// Opens the module file at `path` and returns its uncompressed image: [`ModuleFile::open`]
/// then [`ModuleFile::into_image`].
pub fn read_image(path: &Path, compressions: Compressions) -> Result<Vec<u8>, i32> {
    ModuleFile::open(path, compressions)?.into_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{gzip, xz, zstd};

    const IMAGE: &[u8] = b"\x7fELF not really, but long enough to compress";

    #[test]
    fn shorter_than_the_longest_magic_is_einval() {
        assert_eq!(load(b"\x7fELF\x02", Compressions::ALL), Err(EINVAL));
        assert_eq!(load(b"", Compressions::DEBIAN), Err(EINVAL));
        assert_eq!(
            &*load(b"\x7fELF\x02\x01", Compressions::ALL).unwrap(),
            b"\x7fELF\x02\x01"
        );
        // The longest magic of the formats known: zstd's alone is 4 bytes, gzip's 2.
        let zstd_only = Compressions {
            zstd: true,
            xz: false,
            gzip: false,
        };
        assert_eq!(zstd_only.identify(b"abcd"), Ok(Compression::None));
        assert_eq!(zstd_only.identify(b"abc"), Err(EINVAL));
        let none = Compressions {
            zstd: false,
            xz: false,
            gzip: false,
        };
        assert_eq!(none.identify(b""), Ok(Compression::None));
    }

    #[test]
    fn each_format_by_its_magic() {
        for (compressed, format) in [
            (xz(IMAGE), Compression::Xz),
            (zstd(IMAGE), Compression::Zstd),
            (gzip(IMAGE), Compression::Gzip),
        ] {
            assert_eq!(Compressions::ALL.identify(&compressed), Ok(format));
            assert_eq!(&*load(&compressed, Compressions::ALL).unwrap(), IMAGE);
        }
        let plain = load(IMAGE, Compressions::ALL).unwrap();
        assert!(matches!(plain, Cow::Borrowed(_)));
    }

    /// Debian's kmod has no zlib: a gzip file is read as it is (and is then no ELF file).
    #[test]
    fn debian_reads_gzip_as_it_is() {
        let compressed = gzip(IMAGE);
        assert_eq!(
            Compressions::DEBIAN.identify(&compressed),
            Ok(Compression::None)
        );
        assert_eq!(
            &*load(&compressed, Compressions::DEBIAN).unwrap(),
            &compressed
        );
    }

    #[test]
    fn xz_stream_padding_is_accepted() {
        let mut padded = xz(IMAGE);
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(&*load(&padded, Compressions::ALL).unwrap(), IMAGE);
        // Not a multiple of 4, or not zeros: corrupt.
        let mut odd = xz(IMAGE);
        odd.extend_from_slice(&[0; 3]);
        assert_eq!(load(&odd, Compressions::ALL), Err(EINVAL));
        let mut junk = xz(IMAGE);
        junk.extend_from_slice(b"junk");
        assert_eq!(load(&junk, Compressions::ALL), Err(EINVAL));
    }

    #[test]
    fn gzip_needs_deflate() {
        let mut other_method = gzip(IMAGE);
        other_method[2] = 7;
        assert_eq!(
            Compressions::ALL.identify(&other_method),
            Ok(Compression::Gzip)
        );
        assert_eq!(load(&other_method, Compressions::ALL), Err(EINVAL));
    }

    /// A zstd stream cut short gives what its complete blocks decode to; cut in the frame
    /// header, nothing; a corrupt one is `EINVAL`.
    #[test]
    fn zstd_cut_short_like_libzstd() {
        let mut stream = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00];
        for (i, block) in [b"ab", b"cd", b"ef"].iter().enumerate() {
            let header = u32::from(i == 2) | (2 << 3);
            stream.extend_from_slice(&header.to_le_bytes()[..3]);
            stream.extend_from_slice(*block);
        }
        assert_eq!(&*load(&stream, Compressions::ALL).unwrap(), b"abcdef");
        let cut = &stream[..stream.len() - 1];
        assert_eq!(&*load(cut, Compressions::DEBIAN).unwrap(), b"abcd");
        assert_eq!(&*load(&stream[..6], Compressions::ALL).unwrap(), b"");
        let mut bad = stream.clone();
        bad[6] |= 0x06;
        assert_eq!(load(&bad, Compressions::ALL), Err(EINVAL));
        // A whole compressed image cut anywhere past its magic: never a panic.
        let whole = zstd(&IMAGE.repeat(50));
        for len in 6..whole.len() {
            let _ = load(&whole[..len], Compressions::ALL);
        }
    }

    #[test]
    fn open_reads_and_tells_errno_values() {
        let dir = std::env::temp_dir().join(format!("kmodlab-kmod-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.ko.xz");
        std::fs::write(&path, xz(IMAGE)).unwrap();
        let file = ModuleFile::open(&path, Compressions::DEBIAN).unwrap();
        assert_eq!(file.compression(), Compression::Xz);
        assert_eq!(file.bytes(), &xz(IMAGE)[..]);
        assert_eq!(file.into_image().unwrap(), IMAGE);
        std::fs::write(&path, b"tiny").unwrap();
        assert_eq!(read_image(&path, Compressions::ALL), Err(EINVAL));
        assert_eq!(
            read_image(&dir.join("missing.ko"), Compressions::ALL),
            Err(libc::ENOENT)
        );
        assert_eq!(read_image(&dir, Compressions::ALL), Err(libc::EISDIR));
        assert_eq!(
            read_image(Path::new("/dev/null"), Compressions::ALL),
            Err(EINVAL)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
