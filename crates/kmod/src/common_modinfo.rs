//! Pieces of libkmod that `modinfo` needs to behave byte for byte like kmod's: libkmod's
//! lenient `.modinfo` reader ([`kmod_elf`]) and its module lookups ([`lookup`]). They read
//! files but print nothing themselves: messages go to the writer the caller passes.

pub mod kmod_elf;
pub mod lookup;
