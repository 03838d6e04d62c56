//! The fixtures in `tests/fixtures` (see its README): a gcc-built module-shaped object and the
//! same file compressed by the `xz`, `zstd` and `gzip` tools with the kernel's options.

use kmodlab_modfile::{
    decompress, detect_compression, parse_module, parse_module_file, Compression, ErrorKind,
};

const MINI_KO: &[u8] = include_bytes!("fixtures/mini.ko");
const MINI_KO_XZ: &[u8] = include_bytes!("fixtures/mini.ko.xz");
const MINI_KO_ZST: &[u8] = include_bytes!("fixtures/mini.ko.zst");
const MINI_KO_GZ: &[u8] = include_bytes!("fixtures/mini.ko.gz");

fn compressed() -> [(&'static str, &'static [u8], Compression); 3] {
    [
        ("mini.ko.xz", MINI_KO_XZ, Compression::Xz),
        ("mini.ko.zst", MINI_KO_ZST, Compression::Zstd),
        ("mini.ko.gz", MINI_KO_GZ, Compression::Gzip),
    ]
}

#[test]
fn gcc_built_module_parses() {
    assert_eq!(detect_compression(MINI_KO), Compression::None);
    let info = parse_module(MINI_KO).unwrap();
    // No name= in its .modinfo: the name comes from struct module at offset 24, where gcc put it.
    assert_eq!(info.modinfo.name(), None);
    assert_eq!(info.name, "mini");
    assert_eq!(
        info.modinfo.vermagic(),
        Some("6.12.0-fixture SMP preempt mod_unload ")
    );
    assert_eq!(info.modinfo.get("license"), Some("GPL"));
    assert_eq!(
        info.modinfo.get_all("alias").collect::<Vec<_>>(),
        ["kmodlab:mini", "kmodlab:tiny"]
    );
    assert_eq!(info.modinfo.entries().len(), 6);
    // The weak `maybe_there` is left out.
    assert_eq!(info.undefined_symbols, ["kmalloc_caches", "_printk"]);
    assert!(info.has_init);
    assert!(info.has_exit);
}

#[test]
fn compressed_fixtures_match_the_plain_one() {
    let expected = parse_module(MINI_KO).unwrap();
    for (name, bytes, compression) in compressed() {
        assert_eq!(detect_compression(bytes), compression, "{name}");
        assert_eq!(decompress(bytes).unwrap().as_ref(), MINI_KO, "{name}");
        assert_eq!(parse_module_file(bytes).unwrap(), expected, "{name}");
    }
    assert_eq!(parse_module_file(MINI_KO).unwrap(), expected);
}

#[test]
fn plain_fixture_cut_anywhere_is_truncated() {
    for len in 1..MINI_KO.len() {
        let e = parse_module(&MINI_KO[..len]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "cut at {len}: {e}");
    }
}

#[test]
fn compressed_fixtures_cut_anywhere_fail_to_decompress() {
    for (name, bytes, compression) in compressed() {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            let e = parse_module_file(cut).unwrap_err();
            if detect_compression(cut) == compression {
                assert_eq!(e.kind(), ErrorKind::Decompress, "{name} cut at {len}: {e}");
            } else {
                assert_eq!(e.kind(), ErrorKind::NotElf, "{name} cut at {len}: {e}");
            }
        }
    }
}

/// The tools write checksums (xz CRC32, zstd XXH64, gzip CRC32), so a flipped bit either fails
/// or lands in a field that does not change the data.
#[test]
fn checksums_catch_flipped_bits() {
    for (name, bytes, compression) in compressed() {
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.to_vec();
                bad[at] ^= 1 << bit;
                if detect_compression(&bad) != compression {
                    continue;
                }
                if let Ok(out) = decompress(&bad) {
                    assert!(
                        out.as_ref() == MINI_KO,
                        "{name}: bit {bit} of byte {at} flipped gave different data"
                    );
                }
            }
        }
    }
}
