//! Pieces of libkmod and glibc that `modinfo` needs to behave byte for byte like kmod's:
//! the `.bin` index reader with `fnmatch()` ([`index`]) and its module lookups ([`lookup`]).
//! (libkmod's lenient module file and ELF readers are `kmodlab_modfile::kmod_file` and
//! `kmodlab_modfile::kmod_elf`.) They read files but print nothing themselves: messages go to
//! the writer the caller passes.

pub mod index;
pub mod lookup;
