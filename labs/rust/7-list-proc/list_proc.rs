// SPDX-License-Identifier: GPL-2.0

//! list_proc - lab step 7 in Rust: the current process and the task list.
//!
//! On load and on unload, prints the process running the module code
//! (`current!()`: insmod or rmmod) and then every process in the system.
//! The kernel crate has no safe walk over all tasks, so `Processes` does what
//! C's `for_each_process()` does, under the RCU read lock.

use core::marker::PhantomData;
use kernel::{bindings, prelude::*, sync::rcu, task::Task};

module! {
    type: ListProc,
    name: "list_proc",
    authors: ["kmodlab"],
    description: "List current processes",
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

/// Every process (thread-group leader), like C's `for_each_process()`: the
/// `tasks` list that starts at `init_task`, which itself is not listed.
/// The tasks it yields live as long as the RCU read lock it borrows.
struct Processes<'a> {
    cur: *const bindings::task_struct,
    _rcu: PhantomData<&'a rcu::Guard>,
}

impl<'a> Processes<'a> {
    fn new(_rcu: &'a rcu::Guard) -> Self {
        Self {
            cur: &raw const bindings::init_task,
            _rcu: PhantomData,
        }
    }
}

impl<'a> Iterator for Processes<'a> {
    type Item = &'a Task;

    fn next(&mut self) -> Option<&'a Task> {
        // SAFETY: `cur` is `init_task` or a task on its `tasks` list. Under the
        // RCU read lock (held for `'a`) the list may be walked while tasks come
        // and go, and a task removed from it is freed only after a grace
        // period: `next` is a valid task until the lock is released.
        let next = unsafe {
            let link = core::ptr::read_volatile(&raw const (*self.cur).tasks.next);
            kernel::container_of!(link, bindings::task_struct, tasks)
        };
        if core::ptr::eq(next, &raw const bindings::init_task) {
            return None;
        }
        self.cur = next;
        // SAFETY: `next` is a valid task for `'a` (above), and `Task` is a
        // transparent wrapper of `task_struct`.
        Some(unsafe { &*next.cast::<Task>() })
    }
}

fn print_processes() {
    // TODO 1/6: print the pid and comm of the current process
    let current = current!();
    pr_info!(
        "Current process: pid = {}; comm = {}\n",
        current.pid(),
        Comm::of(current).as_cstr()
    );

    // TODO 2/8: under the RCU read lock, print the pid and comm of every process
    let rcu = rcu::read_lock();
    for task in Processes::new(&rcu) {
        pr_info!(
            "pid = {}; comm = {}\n",
            task.pid(),
            Comm::of(task).as_cstr()
        );
    }
}

struct ListProc;

impl kernel::Module for ListProc {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        print_processes();
        Ok(ListProc)
    }
}

impl Drop for ListProc {
    fn drop(&mut self) {
        print_processes();
    }
}
