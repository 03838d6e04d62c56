// SPDX-License-Identifier: GPL-2.0

//! supermodule (mod1.rs) - init and exit, calling functions from `mod2.rs`.

use kernel::prelude::*;

use crate::mod2;

pub(crate) struct SuperModule;

impl kernel::Module for SuperModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("multi_init\n");
        mod2::print_hello();
        Ok(SuperModule)
    }
}

impl Drop for SuperModule {
    fn drop(&mut self) {
        pr_info!("multi_exit\n");
        mod2::print_goodbye();
    }
}
