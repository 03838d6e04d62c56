// SPDX-License-Identifier: GPL-2.0

//! memory_info - lab step 10 in Rust: the memory areas of the current process.
//!
//! On load, walks the virtual memory areas (VMAs) of the process loading the
//! module, holding its mm's lock for reading, and prints each area as
//! "start-end" in hex, as /proc/PID/maps does, then how many there were.
//!
//! The kernel crate's `mm` module has the address space (`current!().mm()`,
//! an `MmWithUser`), its read lock (`mmap_read_lock()`) and the areas
//! (`VmaRef`, with `start()` and `end()`), but under the lock it only looks
//! up the area *at* one address (`vma_lookup()`): there is no walk, C's
//! `for_each_vma()`. `for_each_vma()` here walks with the kernel's exported
//! `find_vma()`, the first area that ends above an address, under the lock
//! it takes itself; what it hands out is the crate's own `VmaRef`.

use kernel::{
    bindings,
    mm::{virt::VmaRef, MmWithUser},
    prelude::*,
    task::Task,
};

module! {
    type: MemoryInfo,
    name: "memory_info",
    authors: ["kmodlab"],
    description: "Memory areas of the current process",
    license: "GPL",
}

/// A task's name (`comm`), copied out of the task.
struct Comm([u8; bindings::TASK_COMM_LEN as usize]);

impl Comm {
    fn of(task: &Task) -> Self {
        // SAFETY: `task` is a valid task. `comm` is an array the kernel keeps
        // NUL-terminated; a concurrent rename may change it, as in C.
        let comm = unsafe { (*task.as_ptr()).comm };
        Self(comm.map(|c| c as u8))
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).unwrap_or(c"?")
    }
}

/// Calls `f` with each memory area of `mm`, lowest address first, holding
/// the mmap read lock: C's `for_each_vma()` between `mmap_read_lock()` and
/// `mmap_read_unlock()`. The areas cannot outlive the call, nor the lock.
fn for_each_vma(mm: &MmWithUser, mut f: impl FnMut(&VmaRef)) {
    let _lock = mm.mmap_read_lock();
    let mut addr = 0;
    loop {
        // SAFETY: `mm` has users (an `MmWithUser`) and its mmap lock is held
        // for reading (`_lock`), which is what `find_vma()` asks.
        let vma = unsafe { bindings::find_vma(mm.as_raw(), addr) };
        if vma.is_null() {
            return;
        }
        // SAFETY: `find_vma()` returned an area of `mm`, which stays valid
        // while the mmap read lock is held, that is until this function
        // returns; `f` cannot keep the reference longer.
        let vma = unsafe { VmaRef::from_raw(vma) };
        f(vma);
        addr = vma.end();
    }
}

struct MemoryInfo;

impl kernel::Module for MemoryInfo {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let current = current!();
        let mut count = 0;

        pr_info!("pid {} ({})\n", current.pid(), Comm::of(current).as_cstr());
        let Some(mm) = current.mm() else {
            pr_info!("no user memory (a kernel thread)\n");
            return Ok(MemoryInfo);
        };

        // TODO 1/4: walk the VMAs with for_each_vma(mm, ...): print "START-END" in hex (vma.start(), vma.end()), count them
        for_each_vma(mm, |vma| {
            pr_info!("{:x}-{:x}\n", vma.start(), vma.end());
            count += 1;
        });
        // TODO 2/1: print how many VMAs there were: "N VMAs"
        pr_info!("{count} VMAs\n");
        Ok(MemoryInfo)
    }
}

impl Drop for MemoryInfo {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
