// SPDX-License-Identifier: GPL-2.0
/*
 * rcu_stall - module init that stays in an RCU read-side critical section
 * for a few seconds.
 *
 * Init queues an RCU callback (so that a grace period is needed), enters
 * rcu_read_lock() and spins for `seconds` (default 5) before leaving it.
 * The Debian kernel uses preemptible RCU: the spin loop calls
 * cond_resched(), a preemption point, so the RCU grace-period kthread gets
 * the CPU and starts the grace period, and the reader becomes a preempted
 * reader blocking it. The grace period cannot end until rcu_read_unlock().
 * The stall timeout is 21 s by default; the spec boots with
 * rcupdate.rcu_cpu_stall_timeout=3, so after about 3 s the kernel prints
 * "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:" naming the
 * blocked task, with its stack. A stall warning changes nothing for the
 * task: init returns 0, the module loads and unloads normally.
 * (syzkaller: "INFO: rcu detected stall in rcu_stall_init".)
 *
 * Exit waits for the callback (rcu_barrier()), which lives in this module.
 */
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/processor.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>

MODULE_DESCRIPTION("kmodlab test: RCU stall in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static uint seconds = 5;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long init stays in the read-side section (default 5)");

static struct rcu_head head;

static void rcu_stall_done(struct rcu_head *h)
{
	pr_info("rcu_stall: grace period ended\n");
}

static int __init rcu_stall_init(void)
{
	unsigned long end = jiffies + seconds * HZ;

	pr_info("rcu_stall: holding rcu_read_lock for %u s\n", seconds);
	rcu_read_lock();
	call_rcu(&head, rcu_stall_done);
	while (time_before(jiffies, end)) {
		cpu_relax();
		cond_resched();
	}
	rcu_read_unlock();
	pr_info("rcu_stall: rcu_read_unlock\n");
	return 0;
}

static void __exit rcu_stall_exit(void)
{
	rcu_barrier();
	pr_info("rcu_stall: exit\n");
}

module_init(rcu_stall_init);
module_exit(rcu_stall_exit);
