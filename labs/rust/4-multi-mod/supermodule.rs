// SPDX-License-Identifier: GPL-2.0

//! supermodule - lab step 4 in Rust: one module built from several sources.
//!
//! This file is the crate root Kbuild compiles; it declares the module and
//! pulls in `mod1.rs` (init and exit) and `mod2.rs` (the functions they call).
//! All three become one object and one module, `supermodule`.

use kernel::prelude::*;

mod mod1;
mod mod2;

module! {
    type: mod1::SuperModule,
    name: "supermodule",
    authors: ["kmodlab"],
    description: "Multi-file module",
    license: "GPL",
}
