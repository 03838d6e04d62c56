//! The order of kmod's hash tables, which shows through in depmod's outputs: `modules.symbols`
//! lists symbols in the iteration order of a 2048-bucket table, and modules that
//! `modules.order` does not list come in the iteration order of a 512-bucket table.
//!
//! kmod's table (`shared/hash.c`) puts a key in bucket `superfast_hash(key) % buckets` and
//! keeps each bucket sorted by `strcmp`; iterating walks the buckets in order. So the order is
//! `(bucket, key)`, whatever the insertion order.

/// Buckets of depmod's symbol table (`modules.symbols` order).
pub const SYMBOL_BUCKETS: u32 = 2048;
/// Buckets of depmod's module-by-name table (order of modules missing from `modules.order`).
pub const MODULE_BUCKETS: u32 = 512;

/// Paul Hsieh's SuperFastHash, as kmod's `hash_superfast` computes it on x86 (where `char` is
/// signed: the tail bytes are sign-extended).
pub fn superfast_hash(key: &[u8]) -> u32 {
    let len = key.len() as u32;
    let mut hash: u32 = len;
    let signed = |b: u8| i32::from(b as i8) as u32;
    let le16 = |a: u8, b: u8| u32::from(u16::from_le_bytes([a, b]));
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        hash = hash.wrapping_add(le16(c[0], c[1]));
        let tmp = (le16(c[2], c[3]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            hash = hash.wrapping_add(le16(a, b));
            hash ^= hash << 16;
            hash ^= signed(c) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        [a, b] => {
            hash = hash.wrapping_add(le16(a, b));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        [a] => {
            hash = hash.wrapping_add(signed(a));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// The bucket of `key` in a kmod hash table of `buckets` buckets (a power of two).
pub fn bucket(key: &[u8], buckets: u32) -> u32 {
    superfast_hash(key) & (buckets - 1)
}

/// Sorts `items` into the iteration order of a kmod hash table of `buckets` buckets holding
/// them under the keys `key(item)` (which must be distinct).
pub fn sort_in_hash_order<T, K: AsRef<[u8]>>(items: &mut [T], buckets: u32, key: impl Fn(&T) -> K) {
    items.sort_by_cached_key(|item| {
        let k = key(item);
        let k = k.as_ref();
        (bucket(k, buckets), k.to_vec())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values printed by kmod's C `hash_superfast` (shared/hash.c) built with gcc on
    /// x86-64: every tail length, and bytes above 127 (sign-extended in the tail).
    #[test]
    fn matches_kmod() {
        let golden: [(&[u8], u32); 12] = [
            (b"", 0x00000000),
            (b"a", 0x115ea782),
            (b"ab", 0x516b8b44),
            (b"abc", 0xd2be198a),
            (b"abcd", 0xdad8b8db),
            (b"abcde", 0x51ed072e),
            (b"abcdef", 0x963b9dda),
            (b"abcdefg", 0xf071c3ed),
            (b"\xff\x80\xc3", 0x056e8ffd),
            (b"\xc3", 0x3572fe0a),
            (b"snd_pcm", 0x1ca4c8cd),
            (b"usb_register_driver", 0x023fa976),
        ];
        for (key, hash) in golden {
            assert_eq!(superfast_hash(key), hash, "{key:?}");
        }
    }

    #[test]
    fn order_is_bucket_then_key() {
        let mut keys = vec![&b"zeta"[..], b"alpha", b"mid", b"beta"];
        sort_in_hash_order(&mut keys, 4, |k| *k);
        for pair in keys.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!((bucket(a, 4), a) < (bucket(b, 4), b));
        }
    }
}
