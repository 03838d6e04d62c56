// SPDX-License-Identifier: GPL-2.0

//! err_mod - lab step 3 in Rust: a module that does not compile.
//!
//! Init prints the size of a memory page, `PAGE_SIZE`, which the kernel
//! crate declares in its `page` module. Without a `use` that brings it into
//! scope, rustc stops at "cannot find value `PAGE_SIZE` in this scope" and,
//! below the error, suggests the import. Read the first error, find where
//! the name is declared, import it: the Rust twin of C's missing header.

use kernel::prelude::*;
// TODO 1/1: the build fails with "cannot find value `PAGE_SIZE` in this scope": import it from the kernel crate's page module
use kernel::page::PAGE_SIZE;

module! {
    type: ErrMod,
    name: "err_mod",
    authors: ["kmodlab"],
    description: "Error module",
    license: "GPL",
}

struct ErrMod;

impl kernel::Module for ErrMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("pages are {} bytes\n", PAGE_SIZE);
        Ok(ErrMod)
    }
}

impl Drop for ErrMod {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
