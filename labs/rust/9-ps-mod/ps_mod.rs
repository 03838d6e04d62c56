// SPDX-License-Identifier: GPL-2.0

//! ps_mod - lab step 9 in Rust: a process list, as ps prints it.
//!
//! On load and on unload, prints the process running the module code
//! (`current!()`: the loader, then the unloader) and one line per process in
//! the system: PID, parent PID, state letter and command name, under a
//! header, like `ps -o pid,ppid,stat,comm`. Compare it with ps in the guest.
//!
//! The kernel crate's `Task` gives the PID, but has no walk over all tasks,
//! no parent and no state letter: `Processes` follows `init_task.tasks` as
//! C's `for_each_process()` does (as in step 7), `parent()` reads
//! `real_parent` under the RCU read lock, and `state_char()` is C's
//! `task_state_to_char()`, an inline function bindgen cannot bind.

use core::marker::PhantomData;
use kernel::{bindings, prelude::*, sync::rcu, task::Task};

module! {
    type: PsMod,
    name: "ps_mod",
    authors: ["kmodlab"],
    description: "Process list module",
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

/// The task's parent (`real_parent`, C's `rcu_dereference(p->real_parent)`),
/// valid as long as the RCU read lock the caller holds.
fn parent<'a>(task: &Task, _rcu: &'a rcu::Guard) -> &'a Task {
    // SAFETY: `task` is valid, and `real_parent` always points to a task (the
    // reaper when the parent exits). The pointer is RCU-protected: a parent
    // that exits is freed only after a grace period, and the caller holds the
    // RCU read lock for `'a`. `Task` is a transparent wrapper of `task_struct`.
    unsafe {
        let p = core::ptr::read_volatile(&raw const (*task.as_ptr()).real_parent);
        &*p.cast::<Task>()
    }
}

/// The state letter `ps` shows, as C's `task_state_to_char()` computes it:
/// R running, S sleeping, D uninterruptible, T stopped, t traced, X dead,
/// Z zombie, P parked, I idle.
fn state_char(task: &Task) -> char {
    // SAFETY: `task` is valid. `__state` changes under our feet as the task
    // runs and sleeps, so it is read once, as C's READ_ONCE() does.
    let (state, exit_state) = unsafe {
        let t = task.as_ptr();
        (
            core::ptr::read_volatile(&raw const (*t).__state),
            (*t).exit_state as u32,
        )
    };
    let mut report = (state | exit_state) & bindings::TASK_REPORT;
    if state & bindings::TASK_IDLE == bindings::TASK_IDLE {
        report = bindings::TASK_REPORT_IDLE;
    }
    if state & (bindings::TASK_RTLOCK_WAIT | bindings::TASK_FROZEN) != 0 {
        report = bindings::TASK_UNINTERRUPTIBLE;
    }
    // C's fls(): the position of the highest bit set, 1-based, 0 for none.
    let index = (u32::BITS - report.leading_zeros()) as usize;
    b"RSDTtXZPI"[index] as char
}

fn print_process_list(when: &str) {
    // TODO 1/6: print the current process: "on WHEN, current is pid N (COMM)"
    let current = current!();
    pr_info!(
        "on {when}, current is pid {} ({})\n",
        current.pid(),
        Comm::of(current).as_cstr()
    );

    pr_info!("  PID  PPID S COMM\n");
    let mut count = 0;
    // TODO 2/12: for each process (under rcu::read_lock()), print PID, parent's PID, state letter, comm; count them
    let rcu = rcu::read_lock();
    for task in Processes::new(&rcu) {
        pr_info!(
            "{:5} {:5} {} {}\n",
            task.pid(),
            parent(task, &rcu).pid(),
            state_char(task),
            Comm::of(task).as_cstr()
        );
        count += 1;
    }
    drop(rcu);
    pr_info!("{count} processes\n");
}

struct PsMod;

impl kernel::Module for PsMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        print_process_list("load");
        Ok(PsMod)
    }
}

impl Drop for PsMod {
    fn drop(&mut self) {
        // TODO 3/1: print the process list at unload too
        print_process_list("unload");
    }
}
