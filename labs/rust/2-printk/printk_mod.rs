// SPDX-License-Identifier: GPL-2.0

//! printk_mod - lab step 2 in Rust: the kernel log levels.
//!
//! Init prints one message at each of the eight log levels, from `pr_emerg!`
//! (`KERN_EMERG`, 0) to `pr_debug!` (`KERN_DEBUG`, 7). `pr_debug!` compiles
//! to nothing unless the crate is built with debug assertions (the Kbuild
//! file's `-Cdebug-assertions=y`, Rust's `-DDEBUG`); the others always reach
//! the kernel log, and the console shows those below the console log level
//! (the first number of /proc/sys/kernel/printk). Rust's `pr_*!` macros
//! prefix every message with the module name: "printk_mod: level 0 (emerg)".

use kernel::prelude::*;

module! {
    type: PrintkMod,
    name: "printk_mod",
    authors: ["kmodlab"],
    description: "One message per log level",
    license: "GPL",
}

struct PrintkMod;

impl kernel::Module for PrintkMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // TODO 1/7: print "level N (NAME)" at each level from pr_emerg! (0) to pr_info! (6)
        pr_emerg!("level 0 (emerg)\n");
        pr_alert!("level 1 (alert)\n");
        pr_crit!("level 2 (crit)\n");
        pr_err!("level 3 (err)\n");
        pr_warn!("level 4 (warning)\n");
        pr_notice!("level 5 (notice)\n");
        pr_info!("level 6 (info)\n");
        // TODO 2/1: print "level 7 (debug)" with pr_debug!
        pr_debug!("level 7 (debug)\n");
        Ok(PrintkMod)
    }
}

impl Drop for PrintkMod {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
