//! depmod's cache decoder (`kmodlab_kmod::depmod::fuzz_cache_decoder`) on arbitrary bytes taken
//! as the entries of a cache file (what follows its magic and MAC). It must refuse or decode,
//! never panic or allocate beyond the input's size, and what it decodes must survive being
//! encoded and decoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kmodlab_kmod::depmod::fuzz_cache_decoder(data);
});
