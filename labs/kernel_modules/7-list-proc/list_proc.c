// SPDX-License-Identifier: GPL-2.0
/*
 * list_proc - lab step 7: the current process and the task list.
 *
 * On load and on unload, prints the process running the module code
 * (current: insmod or rmmod) and then every process in the system.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

MODULE_DESCRIPTION("List current processes");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static void print_processes(void)
{
	struct task_struct *p;

	/* TODO 1/2: print the current process: "Current process: pid = N; comm = NAME" */
	pr_info("Current process: pid = %d; comm = %s\n",
		current->pid, current->comm);

	/* TODO 2/4: under rcu_read_lock(), print "pid = N; comm = NAME" for each process */
	rcu_read_lock();
	for_each_process(p)
		pr_info("pid = %d; comm = %s\n", p->pid, p->comm);
	rcu_read_unlock();
}

static int my_proc_init(void)
{
	print_processes();
	return 0;
}

static void my_proc_exit(void)
{
	print_processes();
}

module_init(my_proc_init);
module_exit(my_proc_exit);
