// SPDX-License-Identifier: GPL-2.0

//! supermodule (mod2.rs) - the functions `mod1.rs` calls.
//!
//! They are visible to the rest of the crate (`pub(crate)`), not exported
//! to other modules.

use kernel::prelude::*;

pub(crate) fn print_hello() {
    // TODO 1/1: print "Hello from mod2"
    pr_info!("Hello from mod2\n");
}

pub(crate) fn print_goodbye() {
    // TODO 2/1: print "Goodbye from mod2"
    pr_info!("Goodbye from mod2\n");
}
