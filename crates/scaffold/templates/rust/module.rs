// SPDX-License-Identifier: GPL-2.0

//! @NAME@ - a Rust kernel module made by `kmodlab new --rust`.
//!
//! Prints a greeting with its parameter on load and a farewell on unload (`pr_info!` puts the
//! module's name in front: `@MOD@: hello (1 of 1)`).
//! Try: `kmodlab run . count=3` (boots the Rust lab kernel in a VM, loads, shows the messages,
//! unloads) and `kmodlab test .` (runs the cases in kmodlab.toml).

use kernel::prelude::*;

module! {
    type: @TYPE@,
    name: "@MOD@",
    authors: ["you"],
    description: "@NAME@: a kmodlab starter module",
    license: "GPL",
    params: {
        count: i32 {
            default: 1,
            description: "How many times to say hello",
        },
    },
}

struct @TYPE@;

impl kernel::Module for @TYPE@ {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let count = module_parameters::count.value();
        for i in 0..count {
            pr_info!("hello ({} of {})\n", i + 1, count);
        }
        Ok(@TYPE@)
    }
}

impl Drop for @TYPE@ {
    fn drop(&mut self) {
        pr_info!("goodbye\n");
    }
}
