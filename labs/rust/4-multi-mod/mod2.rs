// SPDX-License-Identifier: GPL-2.0

//! supermodule (mod2.rs) - the functions `mod1.rs` calls.
//!
//! They are visible to the rest of the crate (`pub(crate)`), not exported
//! to other modules.

use kernel::prelude::*;

pub(crate) fn print_hello() {
    pr_info!("Hello from mod2\n");
}

pub(crate) fn print_goodbye() {
    pr_info!("Goodbye from mod2\n");
}
