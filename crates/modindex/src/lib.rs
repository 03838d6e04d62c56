//! The module index: depmod's text files (modules.dep, modules.alias, ...) and the binary
//! `.bin` tries (magic B007F457, version 2.1), read and written byte for byte as kmod 30 does.
#![deny(missing_docs)]
