//! The signature appended to a module file (`CONFIG_MODULE_SIG`), read the way `kmod` reads it
//! for `modinfo`.
//!
//! A signed module is the module image followed by the signature and a fixed trailer:
//!
//! ```text
//! [ module image                            ]
//! [ signer's name         (signer_len bytes) ]  empty for PKCS#7
//! [ key identifier        (key_id_len bytes) ]  empty for PKCS#7
//! [ signature data        (sig_len bytes)    ]  a PKCS#7 SignedData message for PKCS#7
//! [ struct module_signature (12 bytes)       ]  algo, hash, id_type, signer_len, key_id_len,
//! [                                          ]  3 pad bytes, sig_len (big-endian u32)
//! [ "~Module signature appended~\n"          ]
//! ```
//!
//! Every kernel since 4.3 signs with PKCS#7 (`id_type` 2): then the signer, the key identifier,
//! the digest algorithm and the signature bytes all come from the PKCS#7 message. The older
//! formats (`PGP`, `X509`) carry them in the trailer itself.
//!
//! The PKCS#7 message is read with a small DER (and BER) reader, only as far as `kmod` (through
//! OpenSSL) looks into it: the first `SignerInfo` of a `SignedData` message, its
//! `issuerAndSerialNumber`, its digest algorithm and its `encryptedDigest`. Nothing is verified:
//! this says who claims to have signed, not whether the signature is good.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind};

/// The magic string that ends a signed module (`MODULE_SIG_STRING` plus a newline).
pub const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

/// Size of `struct module_signature`, the trailer between the signature and the magic.
const TRAILER_SIZE: usize = 12;

/// How the signing key is identified (`enum pkey_id_type` in the kernel's
/// `include/linux/module_signature.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyIdType {
    /// An OpenPGP key ID (id_type 0; never used by mainline kernels).
    Pgp,
    /// An X.509 subjectKeyIdentifier (id_type 1; before Linux 4.3).
    X509,
    /// A PKCS#7 message (id_type 2; every kernel since 4.3).
    Pkcs7,
}

impl KeyIdType {
    /// The name `kmod` prints as `sig_id`: `PGP`, `X509` or `PKCS#7`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyIdType::Pgp => "PGP",
            KeyIdType::X509 => "X509",
            KeyIdType::Pkcs7 => "PKCS#7",
        }
    }

    fn from_trailer(id_type: u8) -> Option<KeyIdType> {
        Some(match id_type {
            0 => KeyIdType::Pgp,
            1 => KeyIdType::X509,
            2 => KeyIdType::Pkcs7,
            _ => return None,
        })
    }
}

/// A digest algorithm a module signature can use: the ones `kmod` knows by name (the kernel's
/// old `enum pkey_hash_algo`, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// MD4.
    Md4,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// RIPEMD-160.
    RipeMd160,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA-224.
    Sha224,
    /// SM3.
    Sm3,
}

impl HashAlgo {
    /// The name `kmod` prints as `sig_hashalgo`: `md4`, `md5`, `sha1`, `rmd160`, `sha256`,
    /// `sha384`, `sha512`, `sha224` or `sm3`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Md4 => "md4",
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::RipeMd160 => "rmd160",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
            HashAlgo::Sha224 => "sha224",
            HashAlgo::Sm3 => "sm3",
        }
    }

    fn from_trailer(hash: u8) -> Option<HashAlgo> {
        Some(match hash {
            0 => HashAlgo::Md4,
            1 => HashAlgo::Md5,
            2 => HashAlgo::Sha1,
            3 => HashAlgo::RipeMd160,
            4 => HashAlgo::Sha256,
            5 => HashAlgo::Sha384,
            6 => HashAlgo::Sha512,
            7 => HashAlgo::Sha224,
            8 => HashAlgo::Sm3,
            _ => return None,
        })
    }

    /// The algorithm whose object identifier has the DER contents `oid`.
    fn from_oid(oid: &[u8]) -> Option<HashAlgo> {
        const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
        Some(match oid {
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x04] => HashAlgo::Md4,
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05] => HashAlgo::Md5,
            [0x2b, 0x0e, 0x03, 0x02, 0x1a] => HashAlgo::Sha1,
            [0x2b, 0x24, 0x03, 0x02, 0x01] => HashAlgo::RipeMd160,
            [0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11] => HashAlgo::Sm3,
            [prefix @ .., last] if prefix == NIST_HASH => match last {
                1 => HashAlgo::Sha256,
                2 => HashAlgo::Sha384,
                3 => HashAlgo::Sha512,
                4 => HashAlgo::Sha224,
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// A module signature, as `kmod` shows it in `modinfo` (`sig_id`, `signer`, `sig_key`,
/// `sig_hashalgo`, `signature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSignature<'a> {
    /// How the key is identified (the trailer's `id_type`).
    pub key_id_type: KeyIdType,
    /// Who signed. For PKCS#7 the value of the `commonName` attribute of the signer's issuer
    /// (for the self-signed keys modules are signed with, the signing certificate's subject);
    /// when the issuer has no common name, the value of its last attribute; empty when the
    /// issuer name is empty. For the older formats the signer's name from the file. The bytes
    /// are as stored: they may hold a NUL, which `kmod` stops at.
    pub signer: &'a [u8],
    /// The key identifier. For PKCS#7 the issuer serial number of the signer's certificate as
    /// an unsigned big-endian number without leading zero bytes (its magnitude, if the DER
    /// integer is negative; empty when it is zero). For the older formats the key identifier
    /// from the file.
    pub key_id: Cow<'a, [u8]>,
    /// The digest algorithm: for PKCS#7 the `SignerInfo`'s `digestAlgorithm`, `None` when it is
    /// not one of [`HashAlgo`]'s (`kmod` then shows no signature at all); for the older
    /// formats the trailer's `hash` byte, always known.
    pub hash_algo: Option<HashAlgo>,
    /// The signature bytes: for PKCS#7 the contents of the `SignerInfo`'s `encryptedDigest`.
    pub signature: Cow<'a, [u8]>,
    /// Length of the module image before the signature (where the signed data ends).
    pub module_len: usize,
}

/// Reads the signature appended to a module image (the decompressed file).
///
/// `Ok(None)` when the image does not end with [`SIGNATURE_MAGIC`]. An error when it does but
/// the trailer is out of range (unknown `algo`, `hash` or `id_type`, a zero `sig_len`, lengths
/// that do not fit in the image) or, for PKCS#7, when the message is not a `SignedData` with at
/// least one `SignerInfo` identified by issuer and serial number. `kmod` shows no signature in
/// all these cases. Errors are [`ErrorKind::Corrupt`] or, when the DER runs past its end,
/// [`ErrorKind::Truncated`], with offsets in `image`.
pub fn parse_signature(image: &[u8]) -> Result<Option<ModuleSignature<'_>>, Error> {
    let Some(size) = image.len().checked_sub(SIGNATURE_MAGIC.len()) else {
        return Ok(None);
    };
    if image.get(size..) != Some(SIGNATURE_MAGIC) {
        return Ok(None);
    }
    let corrupt = |at: usize, detail: String| Error::at(ErrorKind::Corrupt, offset(at), detail);
    let Some(size) = size.checked_sub(TRAILER_SIZE) else {
        return Err(corrupt(
            0,
            format!(
                "the signature magic is there but the image ({} bytes) has no room for the \
                 {TRAILER_SIZE}-byte signature trailer",
                image.len()
            ),
        ));
    };
    let trailer = image.get(size..size + TRAILER_SIZE).unwrap_or_default();
    let &[algo, hash, id_type, signer_len, key_id_len, _, _, _, l0, l1, l2, l3] = trailer else {
        return Err(corrupt(size, "signature trailer is cut short".into()));
    };
    let sig_len = u32::from_be_bytes([l0, l1, l2, l3]);
    if algo >= 2 {
        return Err(corrupt(
            size,
            format!("signature trailer: unknown public key algorithm {algo}"),
        ));
    }
    let trailer_hash = HashAlgo::from_trailer(hash)
        .ok_or_else(|| corrupt(size + 1, format!("signature trailer: unknown hash {hash}")))?;
    let key_id_type = KeyIdType::from_trailer(id_type).ok_or_else(|| {
        corrupt(
            size + 2,
            format!("signature trailer: unknown key identifier type {id_type}"),
        )
    })?;
    let sig_len = usize::try_from(sig_len).unwrap_or(usize::MAX);
    let claimed = sig_len
        .saturating_add(usize::from(signer_len))
        .saturating_add(usize::from(key_id_len));
    if sig_len == 0 || claimed > size {
        return Err(corrupt(
            size + 8,
            format!(
                "signature trailer: signature of {sig_len} bytes, signer of {signer_len} and \
                 key identifier of {key_id_len} do not fit before the trailer ({size} bytes)"
            ),
        ));
    }
    let sig_start = size - sig_len;
    let key_id_start = sig_start - usize::from(key_id_len);
    let signer_start = key_id_start - usize::from(signer_len);
    let signature = image.get(sig_start..size).unwrap_or_default();
    if key_id_type == KeyIdType::Pkcs7 {
        let signer_info = pkcs7_signer_info(signature, sig_start)?;
        return Ok(Some(ModuleSignature {
            key_id_type,
            signer: signer_info.signer,
            key_id: signer_info.serial,
            hash_algo: HashAlgo::from_oid(signer_info.digest_oid),
            signature: signer_info.encrypted_digest,
            module_len: signer_start,
        }));
    }
    Ok(Some(ModuleSignature {
        key_id_type,
        signer: image.get(signer_start..key_id_start).unwrap_or_default(),
        key_id: Cow::Borrowed(image.get(key_id_start..sig_start).unwrap_or_default()),
        hash_algo: Some(trailer_hash),
        signature: Cow::Borrowed(signature),
        module_len: signer_start,
    }))
}

fn offset(at: usize) -> u64 {
    u64::try_from(at).unwrap_or(u64::MAX)
}

/// What `kmod` takes from the first `SignerInfo` of a PKCS#7 `SignedData` message.
#[derive(Debug)]
struct SignerInfo<'a> {
    signer: &'a [u8],
    serial: Cow<'a, [u8]>,
    digest_oid: &'a [u8],
    encrypted_digest: Cow<'a, [u8]>,
}

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Universal tags used here.
const TAG_INTEGER: u32 = 2;
const TAG_OCTET_STRING: u32 = 4;
const TAG_OID: u32 = 6;
const TAG_SEQUENCE: u32 = 16;
const TAG_SET: u32 = 17;

/// Deepest nesting of constructed BER elements followed (OpenSSL stops at 30 too).
const MAX_DEPTH: usize = 30;

/// Tag classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// One BER element: its tag, whether it is constructed, and its contents (without the
/// end-of-contents octets of an indefinite-length element).
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    class: Class,
    constructed: bool,
    tag: u32,
    contents: &'a [u8],
    /// Offset of the element's first byte in the whole image, for messages.
    at: usize,
    /// Offset of `contents` in the whole image.
    contents_at: usize,
}

impl Element<'_> {
    fn is(&self, class: Class, constructed: bool, tag: u32) -> bool {
        self.class == class && self.constructed == constructed && self.tag == tag
    }
}

/// Reads BER elements one after the other from a byte string.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes` in the whole image.
    base: usize,
    depth: usize,
}

fn truncated(at: usize, what: &str) -> Error {
    Error::at(
        ErrorKind::Truncated,
        offset(at),
        format!("PKCS#7 signature: {what} runs past the end of its enclosing element"),
    )
}

fn der_error(at: usize, what: impl Into<String>) -> Error {
    Error::at(
        ErrorKind::Corrupt,
        offset(at),
        format!("PKCS#7 signature: {}", what.into()),
    )
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize, depth: usize) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            base,
            depth,
        }
    }

    fn of(element: &Element<'a>, depth: usize) -> Reader<'a> {
        Reader::new(element.contents, element.contents_at, depth)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn here(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn byte(&mut self, what: &str) -> Result<u8, Error> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| truncated(self.here(), what))?;
        self.pos += 1;
        Ok(b)
    }

    /// The next element, or `None` at the end of the input.
    fn next(&mut self) -> Result<Option<Element<'a>>, Error> {
        if self.at_end() {
            return Ok(None);
        }
        self.element().map(Some)
    }

    fn element(&mut self) -> Result<Element<'a>, Error> {
        let at = self.here();
        let first = self.byte("a tag")?;
        let class = match first >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = first & 0x20 != 0;
        let mut tag = u32::from(first & 0x1f);
        if tag == 0x1f {
            tag = 0;
            loop {
                let b = self.byte("a tag")?;
                if tag > u32::MAX >> 7 {
                    return Err(der_error(at, "tag number too large"));
                }
                tag = (tag << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let length = self.byte("a length")?;
        let contents_at = self.here();
        let contents = if length == 0x80 {
            if !constructed {
                return Err(der_error(at, "indefinite length on a primitive element"));
            }
            self.indefinite_contents(at)?
        } else {
            let len = if length & 0x80 == 0 {
                usize::from(length)
            } else {
                let count = usize::from(length & 0x7f);
                if count > std::mem::size_of::<u64>() {
                    return Err(der_error(at, format!("length of {count} bytes")));
                }
                let mut len = 0u64;
                for _ in 0..count {
                    len = (len << 8) | u64::from(self.byte("a length")?);
                }
                usize::try_from(len).unwrap_or(usize::MAX)
            };
            let contents = self
                .bytes
                .get(self.pos..)
                .and_then(|rest| rest.get(..len))
                .ok_or_else(|| truncated(at, "an element"))?;
            self.pos += len;
            contents
        };
        Ok(Element {
            class,
            constructed,
            tag,
            contents,
            at,
            contents_at,
        })
    }

    /// Skips the elements inside an indefinite-length element up to its end-of-contents octets
    /// and returns the bytes in between.
    fn indefinite_contents(&mut self, at: usize) -> Result<&'a [u8], Error> {
        if self.depth >= MAX_DEPTH {
            return Err(der_error(at, "elements nested too deeply"));
        }
        let start = self.pos;
        loop {
            if self.bytes.get(self.pos..self.pos + 2) == Some(&[0, 0][..]) {
                let contents = self.bytes.get(start..self.pos).unwrap_or_default();
                self.pos += 2;
                return Ok(contents);
            }
            if self.at_end() {
                return Err(truncated(at, "an indefinite-length element"));
            }
            self.depth += 1;
            let inner = self.element();
            self.depth -= 1;
            inner?;
        }
    }

    /// The next element, which must be there and have this tag.
    fn expect(
        &mut self,
        class: Class,
        constructed: bool,
        tag: u32,
        what: &str,
    ) -> Result<Element<'a>, Error> {
        let at = self.here();
        match self.next()? {
            Some(e) if e.is(class, constructed, tag) => Ok(e),
            Some(e) => Err(der_error(
                e.at,
                format!("expected {what}, found tag {:?} {}", e.class, e.tag),
            )),
            None => Err(der_error(at, format!("{what} is missing"))),
        }
    }

    fn sequence(&mut self, what: &str) -> Result<Reader<'a>, Error> {
        let e = self.expect(Class::Universal, true, TAG_SEQUENCE, what)?;
        Ok(Reader::of(&e, self.depth + 1))
    }

    /// The next element if it is the constructed context-specific `[tag]`.
    fn optional_context(&mut self, tag: u32) -> Result<Option<Element<'a>>, Error> {
        let saved = self.pos;
        match self.next()? {
            Some(e) if e.is(Class::Context, true, tag) => Ok(Some(e)),
            _ => {
                self.pos = saved;
                Ok(None)
            }
        }
    }

    /// Fails when elements are left after the last expected one.
    fn end(&self, what: &str) -> Result<(), Error> {
        if self.at_end() {
            Ok(())
        } else {
            Err(der_error(
                self.here(),
                format!("unexpected data at the end of {what}"),
            ))
        }
    }

    fn integer(&mut self, what: &str) -> Result<Element<'a>, Error> {
        let e = self.expect(Class::Universal, false, TAG_INTEGER, what)?;
        integer_magnitude(&e)?;
        Ok(e)
    }
}

/// The magnitude of a DER INTEGER as big-endian bytes without leading zeros, refusing what
/// OpenSSL refuses: empty contents and needless padding bytes.
fn integer_magnitude<'a>(e: &Element<'a>) -> Result<Cow<'a, [u8]>, Error> {
    let bytes = e.contents;
    let (&first, rest) = bytes
        .split_first()
        .ok_or_else(|| der_error(e.at, "INTEGER with no contents"))?;
    let negative = first & 0x80 != 0;
    if let Some(&second) = rest.first() {
        let padded = first == 0 || (first == 0xff && rest.iter().any(|&b| b != 0));
        if padded && negative == (second & 0x80 != 0) {
            return Err(der_error(e.at, "INTEGER with a needless padding byte"));
        }
    }
    if !negative {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        return Ok(Cow::Borrowed(bytes.get(start..).unwrap_or_default()));
    }
    // Two's complement: invert and add one, from the least significant byte.
    let mut magnitude: Vec<u8> = bytes.iter().map(|&b| !b).collect();
    for b in magnitude.iter_mut().rev() {
        let (sum, carry) = b.overflowing_add(1);
        *b = sum;
        if !carry {
            break;
        }
    }
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    magnitude.drain(..start);
    Ok(Cow::Owned(magnitude))
}

/// The contents of an OCTET STRING, primitive or (BER) constructed from pieces.
fn octet_string<'a>(e: &Element<'a>, depth: usize) -> Result<Cow<'a, [u8]>, Error> {
    if !e.constructed {
        return Ok(Cow::Borrowed(e.contents));
    }
    if depth >= MAX_DEPTH {
        return Err(der_error(e.at, "elements nested too deeply"));
    }
    let mut out = Vec::new();
    let mut pieces = Reader::of(e, depth + 1);
    while let Some(piece) = pieces.next()? {
        if !piece.is(Class::Universal, piece.constructed, TAG_OCTET_STRING) {
            return Err(der_error(piece.at, "a piece of an OCTET STRING is not one"));
        }
        out.extend_from_slice(&octet_string(&piece, depth + 1)?);
    }
    Ok(Cow::Owned(out))
}

/// The first `SignerInfo` of the PKCS#7 message `der` (which starts at `base` in the image).
///
/// The whole message is checked about as far as OpenSSL's `d2i_PKCS7()` checks it before
/// `kmod` looks inside (a message OpenSSL refuses shows no signature at all): the structure
/// of the `SignedData` and of every `SignerInfo`, object identifiers, integers, algorithm
/// parameters, and the string types and encodings of the issuer names. Certificates and
/// CRLs are skipped unread.
fn pkcs7_signer_info(der: &[u8], base: usize) -> Result<SignerInfo<'_>, Error> {
    let mut outer = Reader::new(der, base, 0);
    let mut content_info = outer.sequence("ContentInfo")?;
    let content_type =
        oid(&content_info.expect(Class::Universal, false, TAG_OID, "contentType")?)?;
    if content_type != OID_SIGNED_DATA {
        return Err(der_error(
            content_info.base,
            "the message is not SignedData (1.2.840.113549.1.7.2)",
        ));
    }
    let explicit = content_info
        .optional_context(0)?
        .ok_or_else(|| der_error(content_info.base, "SignedData has no content"))?;
    content_info.end("ContentInfo")?;
    let mut content = Reader::of(&explicit, 1);
    let mut signed_data = content.sequence("SignedData")?;
    content.end("the [0] of ContentInfo")?;
    signed_data.integer("SignedData version")?;
    let digest_algorithms =
        signed_data.expect(Class::Universal, true, TAG_SET, "digestAlgorithms")?;
    let mut digest_algorithms = Reader::of(&digest_algorithms, signed_data.depth + 1);
    while !digest_algorithms.at_end() {
        algorithm_identifier(&mut digest_algorithms, "a digestAlgorithm")?;
    }
    let mut inner = signed_data.sequence("contentInfo")?;
    oid(&inner.expect(
        Class::Universal,
        false,
        TAG_OID,
        "contentInfo's contentType",
    )?)?;
    if let Some(explicit) = inner.optional_context(0)? {
        let mut content = Reader::of(&explicit, inner.depth + 1);
        let at = content.here();
        let value = content
            .next()?
            .ok_or_else(|| der_error(at, "contentInfo's [0] is empty"))?;
        check_any(&value)?;
        content.end("contentInfo's [0]")?;
    }
    inner.end("contentInfo")?;
    signed_data.optional_context(0)?; // certificates
    signed_data.optional_context(1)?; // crls
    let signer_infos = signed_data.expect(Class::Universal, true, TAG_SET, "signerInfos")?;
    signed_data.end("SignedData")?;
    let mut signer_infos = Reader::of(&signer_infos, signed_data.depth + 1);
    let first = signer_info(&mut signer_infos)?;
    while !signer_infos.at_end() {
        signer_info(&mut signer_infos)?;
    }
    Ok(first)
}

/// One `SignerInfo`, checked.
fn signer_info<'a>(signer_infos: &mut Reader<'a>) -> Result<SignerInfo<'a>, Error> {
    let mut signer_info = signer_infos.sequence("SignerInfo")?;
    signer_info.integer("SignerInfo version")?;
    let mut issuer_and_serial = signer_info.sequence("issuerAndSerialNumber")?;
    let issuer = issuer_and_serial.sequence("issuer Name")?;
    let serial = issuer_and_serial.integer("serialNumber")?;
    issuer_and_serial.end("issuerAndSerialNumber")?;
    let digest_oid = algorithm_identifier(&mut signer_info, "digestAlgorithm")?;
    if let Some(attributes) = signer_info.optional_context(0)? {
        check_attributes(&attributes, signer_info.depth + 1)?;
    }
    algorithm_identifier(&mut signer_info, "digestEncryptionAlgorithm")?;
    let at = signer_info.here();
    let encrypted_digest = match signer_info.next()? {
        Some(e) if e.class == Class::Universal && e.tag == TAG_OCTET_STRING => e,
        _ => return Err(der_error(at, "encryptedDigest is missing")),
    };
    if let Some(attributes) = signer_info.optional_context(1)? {
        check_attributes(&attributes, signer_info.depth + 1)?;
    }
    signer_info.end("SignerInfo")?;
    Ok(SignerInfo {
        signer: name_to_signer(issuer)?,
        serial: integer_magnitude(&serial)?,
        digest_oid,
        encrypted_digest: octet_string(&encrypted_digest, signer_info.depth)?,
    })
}

/// The contents of an OBJECT IDENTIFIER, refusing what OpenSSL refuses: no contents, a last
/// byte that says more follows, a subidentifier padded with a leading 0x80.
fn oid<'a>(e: &Element<'a>) -> Result<&'a [u8], Error> {
    let bytes = e.contents;
    let padded = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == 0x80 && (i == 0 || bytes[i - 1] & 0x80 == 0));
    if bytes.last().is_none_or(|&b| b & 0x80 != 0) || padded {
        return Err(der_error(e.at, "invalid OBJECT IDENTIFIER"));
    }
    Ok(bytes)
}

/// An `AlgorithmIdentifier`: `SEQUENCE { OID, parameters ANY OPTIONAL }`; its OID.
fn algorithm_identifier<'a>(reader: &mut Reader<'a>, what: &str) -> Result<&'a [u8], Error> {
    let mut algorithm = reader.sequence(what)?;
    let id = oid(&algorithm.expect(Class::Universal, false, TAG_OID, what)?)?;
    if let Some(parameters) = algorithm.next()? {
        check_any(&parameters)?;
    }
    algorithm.end(what)?;
    Ok(id)
}

/// `SET OF Attribute`, each `SEQUENCE { OID, SET OF ANY }`.
fn check_attributes(attributes: &Element<'_>, depth: usize) -> Result<(), Error> {
    let mut attributes = Reader::of(attributes, depth);
    while !attributes.at_end() {
        let mut attribute = attributes.sequence("an Attribute")?;
        oid(&attribute.expect(Class::Universal, false, TAG_OID, "attribute type")?)?;
        let values = attribute.expect(Class::Universal, true, TAG_SET, "attribute values")?;
        let mut values = Reader::of(&values, attribute.depth + 1);
        while let Some(value) = values.next()? {
            check_any(&value)?;
        }
        attribute.end("an Attribute")?;
    }
    Ok(())
}

/// A value of type ANY, checked as OpenSSL decodes the universal types it knows.
fn check_any(e: &Element<'_>) -> Result<(), Error> {
    if e.class != Class::Universal || e.constructed {
        return Ok(());
    }
    let ok = match e.tag {
        0 => false,
        1 => e.contents.len() == 1,
        2 | 10 => integer_magnitude(e).is_ok(),
        3 => e.contents.first().is_some_and(|&unused| unused < 8),
        5 => e.contents.is_empty(),
        6 => oid(e).is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(der_error(
            e.at,
            format!("invalid value of universal type {}", e.tag),
        ))
    }
}

/// What `kmod` shows as the signer for an X.509 Name: the value of the first commonName
/// attribute, else the value of the last attribute, else nothing. Attribute values must be
/// of the types OpenSSL takes in a name, and the text types well encoded.
fn name_to_signer(mut name: Reader<'_>) -> Result<&[u8], Error> {
    let mut common_name = None;
    let mut last = None;
    while let Some(rdn) = name.next()? {
        if !rdn.is(Class::Universal, true, TAG_SET) {
            return Err(der_error(
                rdn.at,
                "a RelativeDistinguishedName is not a SET",
            ));
        }
        let mut attributes = Reader::of(&rdn, name.depth + 1);
        while !attributes.at_end() {
            let mut attribute = attributes.sequence("AttributeTypeAndValue")?;
            let kind =
                oid(&attribute.expect(Class::Universal, false, TAG_OID, "attribute type")?)?;
            let at = attribute.here();
            let value = attribute
                .next()?
                .ok_or_else(|| der_error(at, "attribute value is missing"))?;
            attribute.end("AttributeTypeAndValue")?;
            check_name_value(&value)?;
            if kind == OID_COMMON_NAME && common_name.is_none() {
                common_name = Some(value.contents);
            }
            last = Some(value.contents);
        }
    }
    Ok(common_name.or(last).unwrap_or_default())
}

/// A name attribute's value: one of the universal types OpenSSL takes there, with a valid
/// BIT STRING, UTF8String valid UTF-8, BMPString in 2-byte and UniversalString in 4-byte
/// units, as OpenSSL's canonical form of names requires. (OpenSSL also takes BER-constructed
/// strings there; they are refused here.)
fn check_name_value(e: &Element<'_>) -> Result<(), Error> {
    const TAG_UTF8_STRING: u32 = 12;
    const TAG_UNIVERSAL_STRING: u32 = 28;
    const TAG_BMP_STRING: u32 = 30;
    // OpenSSL's B_ASN1_PRINTABLE through its tag2bit table: BIT STRING, the text types but
    // VideotexString, GraphicString, VisibleString and GeneralString, SEQUENCE, and the
    // types it calls unknown (7 to 9, 11, 13 to 15, 29).
    let allowed = e.class == Class::Universal
        && match e.tag {
            TAG_SEQUENCE => e.constructed,
            3 | 7..=9 | 11..=15 | 18..=20 | 22 | 28..=30 => !e.constructed,
            _ => false,
        };
    let encoded = match e.tag {
        3 => e.contents.first().is_some_and(|&unused| unused < 8),
        TAG_UTF8_STRING => std::str::from_utf8(e.contents).is_ok(),
        TAG_BMP_STRING => e.contents.len().is_multiple_of(2),
        TAG_UNIVERSAL_STRING => e.contents.len().is_multiple_of(4),
        _ => true,
    };
    if allowed && encoded {
        Ok(())
    } else {
        Err(der_error(
            e.at,
            "a name attribute value OpenSSL does not accept",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER element with a definite length.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(contents);
        out
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn oid(bytes: &[u8]) -> Vec<u8> {
        tlv(0x06, bytes)
    }

    fn attribute(kind: &[u8], value: &[u8]) -> Vec<u8> {
        tlv(0x31, &tlv(0x30, &cat(&[oid(kind), tlv(0x0c, value)])))
    }

    const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    const ORG: &[u8] = &[0x55, 0x04, 0x0a];

    fn pkcs7(name: &[u8], serial: &[u8], digest: &[u8], sig: &[u8]) -> Vec<u8> {
        let signer_info = tlv(
            0x30,
            &cat(&[
                tlv(0x02, &[1]),
                tlv(0x30, &cat(&[tlv(0x30, name), tlv(0x02, serial)])),
                tlv(0x30, &cat(&[oid(digest), vec![0x05, 0x00]])),
                tlv(
                    0x30,
                    &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
                ),
                tlv(0x04, sig),
            ]),
        );
        let signed_data = tlv(
            0x30,
            &cat(&[
                tlv(0x02, &[1]),
                tlv(0x31, &tlv(0x30, &oid(digest))),
                tlv(
                    0x30,
                    &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]),
                ),
                tlv(0x31, &signer_info),
            ]),
        );
        tlv(0x30, &cat(&[oid(OID_SIGNED_DATA), tlv(0xa0, &signed_data)]))
    }

    fn signed(sig: &[u8], id_type: u8, hash: u8, signer: &[u8], key_id: &[u8]) -> Vec<u8> {
        let mut image = b"\x7fELF module image".to_vec();
        image.extend_from_slice(signer);
        image.extend_from_slice(key_id);
        image.extend_from_slice(sig);
        image.extend([
            0,
            hash,
            id_type,
            signer.len() as u8,
            key_id.len() as u8,
            0,
            0,
            0,
        ]);
        image.extend((sig.len() as u32).to_be_bytes());
        image.extend_from_slice(SIGNATURE_MAGIC);
        image
    }

    #[test]
    fn unsigned_images_have_no_signature() {
        assert_eq!(parse_signature(b"").unwrap(), None);
        assert_eq!(parse_signature(b"\x7fELF").unwrap(), None);
        assert_eq!(
            parse_signature(b"~Module signature appended~").unwrap(),
            None
        );
    }

    #[test]
    fn pkcs7_signer_serial_digest_and_signature() {
        let name = cat(&[
            attribute(ORG, b"kmodlab"),
            attribute(OID_COMMON_NAME, b"Build time key"),
        ]);
        let der = pkcs7(&name, &[0x00, 0xab, 0x12], SHA256, &[1, 2, 3]);
        let image = signed(&der, 2, 0, b"", b"");
        let sig = parse_signature(&image).unwrap().unwrap();
        assert_eq!(sig.key_id_type, KeyIdType::Pkcs7);
        assert_eq!(sig.signer, b"Build time key");
        assert_eq!(&*sig.key_id, &[0xab, 0x12]);
        assert_eq!(sig.hash_algo, Some(HashAlgo::Sha256));
        assert_eq!(&*sig.signature, &[1, 2, 3]);
        assert_eq!(sig.module_len, 17);
    }

    #[test]
    fn signer_without_common_name_is_the_last_attribute() {
        let name = cat(&[attribute(ORG, b"first"), attribute(ORG, b"last")]);
        let image = signed(&pkcs7(&name, &[5], SHA256, &[9]), 2, 0, b"", b"");
        assert_eq!(parse_signature(&image).unwrap().unwrap().signer, b"last");
        let image = signed(&pkcs7(&[], &[5], SHA256, &[9]), 2, 0, b"", b"");
        assert_eq!(parse_signature(&image).unwrap().unwrap().signer, b"");
    }

    #[test]
    fn serial_numbers_as_openssl_reads_them() {
        let key_id = |serial: &[u8]| {
            let image = signed(&pkcs7(&[], serial, SHA256, &[9]), 2, 0, b"", b"");
            parse_signature(&image).map(|s| s.unwrap().key_id.into_owned())
        };
        assert_eq!(key_id(&[0]).unwrap(), b"");
        assert_eq!(key_id(&[0x7f]).unwrap(), [0x7f]);
        assert_eq!(key_id(&[0x00, 0x80]).unwrap(), [0x80]);
        assert_eq!(key_id(&[0xed, 0xcc]).unwrap(), [0x12, 0x34]);
        assert_eq!(key_id(&[0x80]).unwrap(), [0x80]);
        assert_eq!(key_id(&[0xff, 0x00]).unwrap(), [0x01, 0x00]);
        assert!(key_id(&[]).is_err());
        assert!(key_id(&[0x00, 0x01]).is_err());
        assert!(key_id(&[0xff, 0x80]).is_err());
    }

    #[test]
    fn unknown_digest_is_none() {
        let mut sha3 = SHA256.to_vec();
        *sha3.last_mut().unwrap() = 8;
        let image = signed(&pkcs7(&[], &[1], &sha3, &[9]), 2, 0, b"", b"");
        assert_eq!(parse_signature(&image).unwrap().unwrap().hash_algo, None);
    }

    #[test]
    fn indefinite_lengths_and_constructed_octet_strings() {
        // BER as some signers write it: the ContentInfo and its [0] with indefinite lengths,
        // the signature as a constructed OCTET STRING of two pieces.
        let pieces = cat(&[tlv(0x04, &[7]), tlv(0x04, &[8, 9])]);
        let rsa = oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
        let issuer_and_serial = cat(&[
            tlv(0x30, &attribute(OID_COMMON_NAME, b"cn")),
            tlv(0x02, &[1]),
        ]);
        let signer_info = tlv(
            0x30,
            &cat(&[
                tlv(0x02, &[1]),
                tlv(0x30, &issuer_and_serial),
                tlv(0x30, &oid(SHA256)),
                tlv(0x30, &rsa),
                tlv(0x24, &pieces),
            ]),
        );
        let signed_data = tlv(
            0x30,
            &cat(&[
                tlv(0x02, &[1]),
                tlv(0x31, &[]),
                tlv(
                    0x30,
                    &oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]),
                ),
                tlv(0xa0, &[]),
                tlv(0x31, &signer_info),
            ]),
        );
        let ber = cat(&[
            vec![0x30, 0x80],
            oid(OID_SIGNED_DATA),
            vec![0xa0, 0x80],
            signed_data,
            vec![0, 0, 0, 0],
        ]);
        let image = signed(&ber, 2, 0, b"", b"");
        let sig = parse_signature(&image).unwrap().unwrap();
        assert_eq!(sig.signer, b"cn");
        assert_eq!(&*sig.key_id, &[1]);
        assert_eq!(&*sig.signature, &[7, 8, 9]);
        // Without its end-of-contents octets the message is cut short.
        let cut = signed(&ber[..ber.len() - 2], 2, 0, b"", b"");
        assert_eq!(
            parse_signature(&cut).unwrap_err().kind(),
            ErrorKind::Truncated
        );
    }

    #[test]
    fn legacy_trailer_formats() {
        let image = signed(b"\xff\xfe", 1, 4, b"Signer", b"\x01\x02");
        let sig = parse_signature(&image).unwrap().unwrap();
        assert_eq!(sig.key_id_type, KeyIdType::X509);
        assert_eq!(sig.signer, b"Signer");
        assert_eq!(&*sig.key_id, b"\x01\x02");
        assert_eq!(sig.hash_algo, Some(HashAlgo::Sha256));
        assert_eq!(&*sig.signature, b"\xff\xfe");
        assert_eq!(sig.module_len, 17);
        let pgp = signed(b"s", 0, 8, b"", b"");
        let sig = parse_signature(&pgp).unwrap().unwrap();
        assert_eq!(sig.key_id_type.as_str(), "PGP");
        assert_eq!(sig.hash_algo.map(HashAlgo::as_str), Some("sm3"));
    }

    #[test]
    fn bad_trailers_are_errors() {
        for image in [
            signed(b"s", 3, 4, b"", b""),
            signed(b"s", 1, 9, b"", b""),
            signed(b"", 1, 4, b"", b""),
            SIGNATURE_MAGIC.to_vec(),
        ] {
            let e = parse_signature(&image).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        }
        let mut big = signed(b"s", 1, 4, b"", b"");
        let at = big.len() - SIGNATURE_MAGIC.len() - 4;
        big[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_signature(&big).is_err());
        let mut algo = signed(b"s", 1, 4, b"", b"");
        let at = algo.len() - SIGNATURE_MAGIC.len() - TRAILER_SIZE;
        algo[at] = 2;
        assert!(parse_signature(&algo).is_err());
    }

    #[test]
    fn every_prefix_and_byte_flip_of_a_message_is_handled() {
        let name = cat(&[
            attribute(ORG, b"kmodlab"),
            attribute(OID_COMMON_NAME, b"key"),
        ]);
        let der = pkcs7(&name, &[0x12, 0x34], SHA256, &[1, 2, 3, 4]);
        for len in 0..der.len() {
            let image = signed(&der[..len.max(1)], 2, 0, b"", b"");
            assert!(parse_signature(&image).is_err(), "prefix of {len} bytes");
        }
        for at in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = der.clone();
                bad[at] ^= flip;
                let _ = parse_signature(&signed(&bad, 2, 0, b"", b""));
            }
        }
    }
}
