// SPDX-License-Identifier: GPL-2.0

//! kdb_mod - lab step 8 (extra) in Rust: KDB, the kernel debugger on the
//! serial console.
//!
//! Creates the misc device /dev/kdb_bug; a write to it calls
//! `kdb_bug_func()`, which panics. A Rust panic in the kernel prints
//! "rust_kernel: panicked at FILE:LINE:COL:" and the message, then hits
//! `BUG()`. With kgdboc on the serial console (on the debug lab kernel:
//! echo ttyS0 > /sys/module/kgdboc/parameters/kgdboc) and the kernel told
//! not to reboot on panic (echo 0 > /proc/sys/kernel/panic: kgdb lets an
//! oops through on a kernel set to reboot), the BUG stops the machine in
//! KDB: bt shows `kdb_bug_func`, lsmod shows kdb_mod, md dumps memory, and
//! go lets the oops go on (the writing process is killed). Otherwise the
//! write is a plain oops.
//!
//! The kernel crate has no /proc files; a misc device, which it has
//! (`kernel::miscdevice`), is the file to write to here.

use kernel::{
    fs::{File, Kiocb},
    iov::IovIterSource,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

module! {
    type: KdbMod,
    name: "kdb_mod",
    authors: ["kmodlab"],
    description: "KDB demo: a BUG on demand",
    license: "GPL",
}

/// What the kernel gets to hit a BUG: a panic, out of line so that the
/// backtrace names it.
#[inline(never)]
fn kdb_bug_func() {
    pr_info!("about to panic (a BUG)\n");
    // TODO 2/1: panic here: the kernel's panic handler hits BUG(), and the kernel stops in KDB when kgdboc is set
    panic!("BUG on demand");
}

/// An open /dev/kdb_bug: nothing to keep.
struct KdbBug;

#[vtable]
impl MiscDevice for KdbBug {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result {
        Ok(())
    }

    fn write_iter(_kiocb: Kiocb<'_, ()>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        kdb_bug_func();
        let len = iov.len();
        iov.advance(len);
        Ok(len)
    }
}

struct KdbMod {
    /// /dev/kdb_bug, once registered; dropping the registration removes it.
    kdb_bug: Option<Pin<KBox<MiscDeviceRegistration<KdbBug>>>>,
}

impl kernel::Module for KdbMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut module = KdbMod { kdb_bug: None };
        // TODO 1/4: register the misc device kdb_bug (MiscDeviceRegistration::register, pinned in a KBox) and keep it in module.kdb_bug
        module.kdb_bug = Some(KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name: c"kdb_bug" }),
            GFP_KERNEL,
        )?);
        pr_info!("loaded, write to /dev/kdb_bug to hit a BUG\n");
        Ok(module)
    }
}

impl Drop for KdbMod {
    fn drop(&mut self) {
        self.kdb_bug = None;
        pr_info!("unloaded\n");
    }
}
