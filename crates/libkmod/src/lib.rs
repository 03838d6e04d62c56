//! The part of libkmod 30 that kmodlab's module tools stand on, rebuilt as one layer (in the
//! spirit of uutils' `uucore` under its utilities): each tool in `kmodlab-kmod` is a front end
//! that parses its options and prints, and everything it asks of modules goes through here.
//!
//! - [`kmod_context`]: the context (`struct kmod_ctx`): module objects, lookups by name, alias,
//!   symbol and path, dependencies, options, install/remove commands, softdeps, the probe list,
//!   module state, insertion and removal.
//! - [`indexes`]: the modules directory's `.bin` indexes, read with `kmodlab-modindex`'s bounded
//!   reader (the text files only where a `.bin` file is missing).
//! - [`modprobe_config`]: `modprobe.d` files and the kernel command line.
//! - [`kernel_state`]: `/sys/module`, `/proc/modules`, `/proc/cmdline` and the module syscalls
//!   (or fakes of them, for tests).
//! - [`module_insert`]: loading one module file the way the kernel prefers it.
//! - [`tool_log`]: the tools' and libkmod's messages, and the one version line.
//!
//! Module files are opened and read with `kmodlab-modfile` (`kmod_file`, `kmod_elf`); names,
//! aliases and wildcards are `kmodlab-modindex`'s.
#![deny(missing_docs)]

pub mod indexes;
pub mod kernel_state;
pub mod kmod_context;
pub mod modprobe_config;
pub mod module_insert;
pub mod tool_log;
