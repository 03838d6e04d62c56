// SPDX-License-Identifier: GPL-2.0

//! oops_mod - lab step 5 in Rust: an oops in module init.
//!
//! Init writes through a NULL raw pointer. The kernel prints an oops naming
//! `my_oops_init`, kills insmod, and the module stays in the "coming" state,
//! so it cannot be unloaded. Safe Rust cannot do this: it takes `unsafe`.

use kernel::prelude::*;

module! {
    type: OopsMod,
    name: "oops_mod",
    authors: ["kmodlab"],
    description: "Oops generating module",
    license: "GPL",
}

/// The faulty init, out of line so that the oops names it.
#[inline(never)]
fn my_oops_init() {
    let p: *mut u8 = core::ptr::null_mut();

    pr_info!("before init\n");
    // TODO 1/3: write a byte through p, the NULL pointer (a volatile write, in unsafe)
    // SAFETY: none: `p` is NULL, and this write is the bug the exercise shows.
    // A volatile write is one the compiler must emit as it is.
    unsafe { p.write_volatile(b'a') };

    pr_info!("after init\n");
}

struct OopsMod;

impl kernel::Module for OopsMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        my_oops_init();
        Ok(OopsMod)
    }
}

impl Drop for OopsMod {
    fn drop(&mut self) {
        pr_info!("module goes all out\n");
    }
}
