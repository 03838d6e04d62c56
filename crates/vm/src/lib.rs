//! The VM loop: QEMU's command line, the initramfs, the accelerator probe, and one run of a module
//! from boot to power off. It reports through [`kmodlab_events::Event`]s and returns a
//! [`kmodlab_events::RunResult`].
#![deny(missing_docs)]

pub mod accel;
pub mod cpio;
pub mod gdb;
pub mod guest;
pub mod initramfs;
pub mod machine;
pub mod qemu;
pub mod qmp;
pub mod script;
pub mod session;
pub mod shell;
pub mod warm;

pub use guest::{BootKernel, BootSpec, Guest, InfraError};
pub use qemu::Accel;
pub use session::{run, Deadlines, RunPlan};
