// SPDX-License-Identifier: GPL-2.0

//! hello_mod - lab steps 1-2 in Rust: the smallest module.
//!
//! Prints "Hello!" on load and "Goodbye!" on unload with `pr_debug!`, which
//! compiles to nothing unless the crate is built with debug assertions: the
//! Kbuild file adds `-Cdebug-assertions=y`, the Rust twin of C's `-DDEBUG`.
//! Rust's `pr_*!` macros prefix every message with the module name.

use kernel::prelude::*;

module! {
    type: HelloMod,
    name: "hello_mod",
    authors: ["kmodlab"],
    description: "Simple module",
    license: "GPL",
}

struct HelloMod;

impl kernel::Module for HelloMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // TODO 1/1: print "Hello!" with pr_debug! (Kbuild turns it on)
        pr_debug!("Hello!\n");
        Ok(HelloMod)
    }
}

impl Drop for HelloMod {
    fn drop(&mut self) {
        // TODO 2/1: print "Goodbye!" with pr_debug!
        pr_debug!("Goodbye!\n");
    }
}
