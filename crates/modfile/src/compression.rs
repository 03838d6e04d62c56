//! Compressed module files: recognising xz, zstd and gzip by their magic bytes and
//! decompressing them with pure-Rust decoders.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use crate::error::{Error, ErrorKind};

/// How a module file is compressed, as told by its first bytes (never by its name).
///
/// These are the formats `kmod` and the kernel's in-kernel module decompressor accept
/// (`CONFIG_MODULE_COMPRESS_{XZ,ZSTD,GZIP}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Not compressed (or compressed in a format this crate does not know).
    None,
    /// xz container (`FD 37 7A 58 5A 00`), as made by `xz` for `.ko.xz`.
    Xz,
    /// Zstandard frame (`28 B5 2F FD`, or a skippable frame `5? 2A 4D 18`), for `.ko.zst`.
    Zstd,
    /// gzip member with deflate (`1F 8B 08`), for `.ko.gz`.
    Gzip,
}

pub(crate) const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
pub(crate) const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// gzip's magic and the deflate method byte.
pub(crate) const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];

/// The largest decompressed image accepted: 1 GiB. Real modules, even with full debug
/// information, are far smaller; the cap keeps a decompression bomb from eating all memory.
const MAX_DECOMPRESSED: usize = 1 << 30;

/// Tells how `bytes` are compressed from their magic bytes.
///
/// Anything that does not start with a known magic is [`Compression::None`]; an ELF image
/// starts with `7F 45 4C 46`, which no compressed format shares.
pub fn detect_compression(bytes: &[u8]) -> Compression {
    if bytes.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if bytes.starts_with(ZSTD_MAGIC) || is_zstd_skippable_frame(bytes) {
        Compression::Zstd
    } else if bytes.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// Skippable frames have the magic 0x184D2A50..=0x184D2A5F, little-endian.
fn is_zstd_skippable_frame(bytes: &[u8]) -> bool {
    matches!(bytes, [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50)
}

/// Decompresses `bytes` if [`detect_compression`] recognises them, else returns them as they
/// are (borrowed, not copied).
///
/// All of a multi-stream gzip file and every frame of a zstd file are decoded (zstd skippable
/// frames are skipped); an xz file must hold exactly one stream without padding, which is what
/// `xz` writes. Checksums are verified when the format carries them (xz CRC32/CRC64, gzip
/// CRC32, zstd content checksum). An image that would grow past 1 GiB is refused.
///
/// Every failure is [`ErrorKind::Decompress`], with the format and the cause in the detail.
pub fn decompress(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    match detect_compression(bytes) {
        Compression::None => Ok(Cow::Borrowed(bytes)),
        Compression::Xz => decompress_xz(bytes, MAX_DECOMPRESSED).map(Cow::Owned),
        Compression::Zstd => decompress_zstd(bytes, MAX_DECOMPRESSED).map(Cow::Owned),
        Compression::Gzip => decompress_gzip(bytes, MAX_DECOMPRESSED).map(Cow::Owned),
    }
}

fn decompress_error(format: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Decompress, None, format!("{format}: {detail}"))
}

fn too_large(format: &str, limit: usize) -> Error {
    decompress_error(
        format,
        format_args!("decompressed image is larger than {limit} bytes"),
    )
}

/// A `Vec` sink that refuses to grow past `limit` bytes.
struct CappedVec {
    out: Vec<u8>,
    limit: usize,
}

impl CappedVec {
    fn new(limit: usize) -> CappedVec {
        CappedVec {
            out: Vec::new(),
            limit,
        }
    }
}

impl Write for CappedVec {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.limit.saturating_sub(self.out.len()) {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "decompressed image too large",
            ));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn decompress_xz(bytes: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    use liblzma::stream::{Action, Status, Stream};

    check_xz_footer(bytes)?;
    // liblzma's messages for each failure are the ones kmod prints (`xz: File is corrupt`).
    let lzma_error = |e: liblzma::stream::Error| {
        let detail = match e {
            liblzma::stream::Error::Data => "File is corrupt",
            liblzma::stream::Error::Format => "File format not recognized",
            liblzma::stream::Error::Options => "Unsupported compression options",
            liblzma::stream::Error::Mem | liblzma::stream::Error::MemLimit => {
                "Cannot allocate memory"
            }
            _ => "Internal error (bug)",
        };
        decompress_error("xz", detail)
    };
    let mut stream = Stream::new_stream_decoder(u64::MAX, 0).map_err(lzma_error)?;
    // Modules compress about 5:1; start there and double as needed.
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len().saturating_mul(6).min(limit));
    let mut input = bytes;
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(too_large("xz", limit));
            }
            let grow = out.capacity().max(1 << 16).min(limit - out.len());
            out.reserve_exact(grow);
        }
        let in_before = stream.total_in();
        let out_before = out.len();
        let status = stream
            .process_vec(input, &mut out, Action::Finish)
            .map_err(lzma_error)?;
        let consumed = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
        input = input.get(consumed..).unwrap_or_default();
        match status {
            Status::StreamEnd => break,
            Status::MemNeeded if out.len() < out.capacity() => {
                return Err(decompress_error("xz", "Unexpected end of input"))
            }
            _ if consumed == 0 && out.len() == out_before && out.len() < out.capacity() => {
                return Err(decompress_error("xz", "Unexpected end of input"))
            }
            _ => {}
        }
    }
    if !input.is_empty() {
        return Err(decompress_error(
            "xz",
            "trailing data after the end of the stream",
        ));
    }
    Ok(out)
}

/// Checks the fixed-size xz stream footer (the last 12 bytes) before decoding: a stream that
/// does not end there (truncated, padded, trailing data) is refused without decoding it.
fn check_xz_footer(bytes: &[u8]) -> Result<(), Error> {
    let footer = match bytes
        .len()
        .checked_sub(12)
        .and_then(|start| bytes.get(start..))
    {
        Some(footer) if bytes.len() >= XZ_MAGIC.len() + 12 => footer,
        _ => {
            return Err(decompress_error(
                "xz",
                "stream is truncated (no stream footer)",
            ))
        }
    };
    if !footer.ends_with(b"YZ") {
        return Err(decompress_error(
            "xz",
            "stream footer magic `YZ` not found at the end (truncated, padded or trailing data)",
        ));
    }
    if footer.get(4..8) == Some(&[0xff; 4][..]) {
        return Err(decompress_error(
            "xz",
            "stream footer has an invalid index size",
        ));
    }
    Ok(())
}

fn io_error(format: &str, e: &io::Error, limit: usize) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => decompress_error(format, "stream is truncated"),
        io::ErrorKind::OutOfMemory => too_large(format, limit),
        _ => decompress_error(format, e),
    }
}

fn decompress_gzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let take = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(bytes)
        .take(take)
        .read_to_end(&mut out)
        .map_err(|e| io_error("gzip", &e, limit))?;
    if out.len() > limit {
        return Err(too_large("gzip", limit));
    }
    Ok(out)
}

fn decompress_zstd(bytes: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

    let mut decoder = FrameDecoder::new();
    let mut out = CappedVec::new(limit);
    let mut input = bytes;
    while !input.is_empty() {
        match decoder.init(&mut input) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                input = usize::try_from(length)
                    .ok()
                    .and_then(|length| input.get(length..))
                    .ok_or_else(|| decompress_error("zstd", "skippable frame is truncated"))?;
                continue;
            }
            Err(e) => return Err(decompress_error("zstd", e)),
        }
        loop {
            let before = input.len();
            decoder
                .decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(1 << 20))
                .map_err(|e| decompress_error("zstd", e))?;
            decoder
                .collect_to_writer(&mut out)
                .map_err(|e| io_error("zstd", &e, limit))?;
            if decoder.is_finished() {
                break;
            }
            if input.len() == before {
                // Every call reads at least one block header; this is only a safety net.
                return Err(decompress_error("zstd", "stream is truncated"));
            }
        }
        if let (Some(stored), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) {
            if stored != computed {
                return Err(decompress_error(
                    "zstd",
                    format_args!("content checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
                ));
            }
        }
    }
    Ok(out.out)
}

/// Decompresses zstd as libkmod's streaming loop over libzstd does (`load_zstd`): corrupt data,
/// a frame whose content is not the size its header declares, and trailing garbage are
/// errors, but a stream that simply ends early yields what its complete blocks decode to.
pub(crate) fn decompress_zstd_like_libzstd(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let walk = zstd_frames(bytes).ok_or_else(|| decompress_error("zstd", "corrupt frame"))?;
    let mut image = Vec::new();
    for frame in &walk.frames {
        let data = bytes
            .get(frame.range.clone())
            .ok_or_else(|| decompress_error("zstd", "stream is truncated"))?;
        let decoded = decompress_zstd(data, MAX_DECOMPRESSED)?;
        if frame
            .content_size
            .is_some_and(|size| size != decoded.len() as u64)
        {
            return Err(decompress_error(
                "zstd",
                "frame content is not the size its header declares",
            ));
        }
        image.extend_from_slice(&decoded);
    }
    if let Some(cut) = &walk.cut_frame {
        image.extend_from_slice(&decompress_zstd(cut, MAX_DECOMPRESSED)?);
    }
    Ok(image)
}

/// A little-endian number of `len` bytes at `at`.
fn le_bytes(bytes: &[u8], at: usize, len: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(len)?)?;
    Some(field.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b)))
}

/// One whole zstd frame of a stream.
struct ZstdFrame {
    range: std::ops::Range<usize>,
    /// The content size its header declares, if it does.
    content_size: Option<u64>,
}

/// The frames of a zstd stream, as far as the input goes.
struct ZstdWalk {
    /// The whole frames (skippable frames left out).
    frames: Vec<ZstdFrame>,
    /// When the input ends inside a frame: that frame's complete blocks made a stream of
    /// their own (its header rewritten without content size and checksum, an empty last
    /// block added), which decodes to what libzstd had produced when its input ran out.
    cut_frame: Option<Vec<u8>>,
}

/// Walks the frames and blocks of a zstd stream; `None` when a frame or block header is
/// malformed (not a frame magic where a frame should start, a reserved block type).
fn zstd_frames(bytes: &[u8]) -> Option<ZstdWalk> {
    const FRAME_MAGIC: u32 = 0xFD2F_B528;
    let mut walk = ZstdWalk {
        frames: Vec::new(),
        cut_frame: None,
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(magic) = le_bytes(bytes, pos, 4) else {
            return Some(walk);
        };
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            // A skippable frame.
            let Some(size) = le_bytes(bytes, pos + 4, 4) else {
                return Some(walk);
            };
            pos = (pos + 8).checked_add(usize::try_from(size).ok()?)?;
            continue;
        }
        if magic != u64::from(FRAME_MAGIC) {
            return None;
        }
        let Some(&descriptor) = bytes.get(pos + 4) else {
            return Some(walk);
        };
        if descriptor & 0x08 != 0 {
            // The reserved bit.
            return None;
        }
        let single_segment = descriptor & 0x20 != 0;
        let has_checksum = descriptor & 0x04 != 0;
        let dict_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let fcs_len = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let window_at = pos + 5;
        let dict_at = window_at + usize::from(!single_segment);
        let fcs_at = dict_at + dict_len;
        let blocks_start = fcs_at + fcs_len;
        if blocks_start > bytes.len() {
            return Some(walk);
        }
        let content_size = match fcs_len {
            0 => None,
            2 => le_bytes(bytes, fcs_at, 2).map(|size| size + 256),
            len => le_bytes(bytes, fcs_at, len),
        };
        // libzstd refuses windows over 128 MiB, and blocks larger than the window or 128 KiB.
        let window_size = if single_segment {
            content_size.unwrap_or(0)
        } else {
            let descriptor = u64::from(*bytes.get(window_at)?);
            let base = 1u64 << ((descriptor >> 3) + 10);
            base + base / 8 * (descriptor & 7)
        };
        if window_size > 1 << 27 {
            return None;
        }
        let block_max = window_size.min(128 << 10);
        let mut at = blocks_start;
        let mut read_last_block = false;
        while let Some(header) = le_bytes(bytes, at, 3) {
            let size = usize::try_from(header >> 3).ok()?;
            let (content, rle) = match (header >> 1) & 3 {
                0 | 2 => (size, false),
                1 => (1, true),
                _ => return None,
            };
            if !rle && header >> 3 > block_max {
                return None;
            }
            if at + 3 + content > bytes.len() {
                break;
            }
            if rle && header >> 3 > block_max {
                return None;
            }
            at += 3 + content;
            if header & 1 != 0 {
                read_last_block = true;
                break;
            }
        }
        let frame_end = at + if has_checksum { 4 } else { 0 };
        if read_last_block && frame_end <= bytes.len() {
            walk.frames.push(ZstdFrame {
                range: pos..frame_end,
                content_size,
            });
            pos = frame_end;
            continue;
        }
        // The frame ends early: keep its complete blocks and end it there.
        let window = if single_segment {
            // The window was the content size: describe one at least as large.
            let size = content_size.unwrap_or(0);
            let exponent = (10u8..=41).find(|&e| 1u64 << e >= size).unwrap_or(41) - 10;
            exponent << 3
        } else {
            *bytes.get(window_at)?
        };
        let mut cut = FRAME_MAGIC.to_le_bytes().to_vec();
        cut.push(descriptor & 0x03);
        cut.push(window);
        cut.extend_from_slice(bytes.get(dict_at..fcs_at)?);
        cut.extend_from_slice(bytes.get(blocks_start..at)?);
        if !read_last_block {
            cut.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        walk.cut_frame = Some(cut);
        return Some(walk);
    }
    Some(walk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_image::{gzip, xz, zstd};

    /// `words` little-endian counters after a short header: compressible but not trivial.
    fn sample_of(words: u32) -> Vec<u8> {
        let mut data = b"\x7fELF kmodlab decompression sample\n".to_vec();
        for i in 0..words {
            data.extend_from_slice(&i.to_le_bytes());
        }
        data
    }

    fn sample() -> Vec<u8> {
        sample_of(20_000)
    }

    #[test]
    fn detects_each_magic() {
        assert_eq!(detect_compression(b"\x7fELF\x02\x01"), Compression::None);
        assert_eq!(detect_compression(b""), Compression::None);
        assert_eq!(detect_compression(&xz(b"x")), Compression::Xz);
        assert_eq!(detect_compression(&zstd(b"x")), Compression::Zstd);
        assert_eq!(detect_compression(&gzip(b"x")), Compression::Gzip);
        assert_eq!(
            detect_compression(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]),
            Compression::Zstd
        );
        // Prefixes of a magic are not that format.
        assert_eq!(detect_compression(&XZ_MAGIC[..5]), Compression::None);
        assert_eq!(detect_compression(&[0x1f, 0x8b]), Compression::None);
    }

    #[test]
    fn uncompressed_input_is_borrowed() {
        let data = sample();
        let out = decompress(&data).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(&*out, &data[..]);
    }

    #[test]
    fn xz_round_trip() {
        let data = sample();
        let compressed = xz(&data);
        let out = decompress(&compressed).unwrap();
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(&*out, &data[..]);
    }

    #[test]
    fn zstd_round_trip() {
        let data = sample();
        assert_eq!(&*decompress(&zstd(&data)).unwrap(), &data[..]);
    }

    #[test]
    fn zstd_concatenated_frames_and_skippable_frame() {
        let mut input = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
        input.extend(zstd(b"first "));
        input.extend(zstd(b"second"));
        assert_eq!(&*decompress(&input).unwrap(), b"first second");
    }

    #[test]
    fn gzip_round_trip_and_multiple_members() {
        let data = sample();
        assert_eq!(&*decompress(&gzip(&data)).unwrap(), &data[..]);
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(&*decompress(&two).unwrap(), b"first second");
    }

    #[test]
    fn empty_payloads_round_trip() {
        assert_eq!(&*decompress(&xz(b"")).unwrap(), b"");
        assert_eq!(&*decompress(&gzip(b"")).unwrap(), b"");
        assert_eq!(&*decompress(&zstd(b"")).unwrap(), b"");
    }

    /// Cutting a compressed stream anywhere never panics and, once the magic is intact,
    /// always fails with `Decompress`.
    #[test]
    fn truncated_streams_fail_cleanly() {
        let data = sample_of(1000);
        for compressed in [xz(&data), zstd(&data), gzip(&data)] {
            let kind = detect_compression(&compressed);
            for len in 0..compressed.len() {
                let cut = &compressed[..len];
                match decompress(cut) {
                    Ok(out) => assert_ne!(
                        detect_compression(cut),
                        kind,
                        "{kind:?} cut at {len} decompressed to {} bytes",
                        out.len()
                    ),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Decompress, "{e}"),
                }
            }
        }
    }

    /// Flipping bytes of a compressed stream never panics. gzip carries a CRC32, so a flip that
    /// still decompresses must give the original data back (it hit a field such as the mtime);
    /// the xz and zstd encoders used here write no checksum (the fixtures made by the `xz` and
    /// `zstd` tools have one: see `tests/fixtures.rs`).
    #[test]
    fn corrupted_streams_never_panic() {
        let data = sample_of(1000);
        for compressed in [xz(&data), gzip(&data), zstd(&data)] {
            let format = detect_compression(&compressed);
            for at in 0..compressed.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = compressed.clone();
                    bad[at] ^= flip;
                    let Ok(out) = decompress(&bad) else { continue };
                    if format == Compression::Gzip && detect_compression(&bad) == format {
                        assert!(
                            out.as_ref() == data.as_slice(),
                            "{format:?}: flip {flip:#x} at {at} gave different data"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn xz_with_broken_footer_is_refused_before_decoding() {
        let mut bad = xz(b"payload");
        let len = bad.len();
        bad[len - 8..len - 4].copy_from_slice(&[0xff; 4]);
        let e = decompress(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decompress);
        assert!(e.to_string().contains("xz"), "{e}");

        let mut padded = xz(b"payload");
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(
            decompress(&padded).unwrap_err().kind(),
            ErrorKind::Decompress
        );
    }

    #[test]
    fn output_over_the_limit_is_refused() {
        let data = sample();
        let limit = data.len() - 1;
        for e in [
            decompress_xz(&xz(&data), limit).unwrap_err(),
            decompress_zstd(&zstd(&data), limit).unwrap_err(),
            decompress_gzip(&gzip(&data), limit).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Decompress);
            assert!(e.to_string().contains("larger than"), "{e}");
        }
        assert_eq!(decompress_gzip(&gzip(&data), data.len()).unwrap(), data);
        assert_eq!(decompress_xz(&xz(&data), data.len()).unwrap(), data);
        assert_eq!(decompress_zstd(&zstd(&data), data.len()).unwrap(), data);
    }
    #[test]
    fn zstd_cut_between_blocks() {
        let like_libzstd = |bytes: &[u8]| decompress_zstd_like_libzstd(bytes).ok();
        // A frame of three raw blocks ("ab", "cd", "ef"), no checksum, no content size.
        let mut stream = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00];
        for (i, block) in [b"ab", b"cd", b"ef"].iter().enumerate() {
            let last = u32::from(i == 2);
            let header = last | (2 << 3);
            stream.extend_from_slice(&header.to_le_bytes()[..3]);
            stream.extend_from_slice(*block);
        }
        assert_eq!(like_libzstd(&stream).unwrap(), b"abcdef");
        // Cut inside the third block: the first two decode.
        let cut = &stream[..stream.len() - 1];
        assert_eq!(like_libzstd(cut).unwrap(), b"abcd");
        // Cut inside the header of the frame: nothing.
        assert_eq!(like_libzstd(&stream[..5]).unwrap(), b"");
        // A reserved block type is corrupt, wherever the input ends.
        let mut bad = stream.clone();
        bad[6] |= 0x06;
        assert_eq!(like_libzstd(&bad), None);
        // Garbage after a whole frame.
        let mut trailing = stream.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(like_libzstd(&trailing), None);
    }
}
