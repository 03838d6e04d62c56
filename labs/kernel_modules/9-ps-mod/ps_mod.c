// SPDX-License-Identifier: GPL-2.0
/*
 * ps_mod - lab step 9: a process list, as ps prints it.
 *
 * On load and on unload, prints the process running the module code
 * (current: the loader, then the unloader) and one line per process in the
 * system: PID, parent PID, state letter and command name, under a header,
 * like "ps -o pid,ppid,stat,comm". Compare it with ps in the guest.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

MODULE_DESCRIPTION("Process list module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static void print_process_list(const char *when)
{
	struct task_struct *p;
	int count = 0;

	/* TODO 1/2: print the current process: "ps_mod: on WHEN, current is pid N (COMM)" */
	pr_info("ps_mod: on %s, current is pid %d (%s)\n", when, current->pid,
		current->comm);

	pr_info("ps_mod:   PID  PPID S COMM\n");
	/* TODO 2/8: for each process (under rcu_read_lock()), print PID, parent's PID, state letter, comm; count them */
	rcu_read_lock();
	for_each_process(p) {
		pr_info("ps_mod: %5d %5d %c %s\n", task_pid_nr(p),
			task_pid_nr(rcu_dereference(p->real_parent)),
			task_state_to_char(p), p->comm);
		count++;
	}
	rcu_read_unlock();
	pr_info("ps_mod: %d processes\n", count);
}

static int __init ps_init(void)
{
	print_process_list("load");
	return 0;
}

static void __exit ps_exit(void)
{
	/* TODO 3/1: print the process list at unload too */
	print_process_list("unload");
}

module_init(ps_init);
module_exit(ps_exit);
