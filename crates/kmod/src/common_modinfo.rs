//! libkmod's lenient `.modinfo` reader ([`kmod_elf`]), which `modinfo` needs to behave byte
//! for byte like kmod's.

pub mod kmod_elf;
