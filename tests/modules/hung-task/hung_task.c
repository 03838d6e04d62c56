// SPDX-License-Identifier: GPL-2.0
/*
 * hung_task - module init that sleeps uninterruptibly for a few seconds.
 *
 * Init sleeps `seconds` (default 6) in TASK_UNINTERRUPTIBLE ("D" state)
 * with schedule_timeout_uninterruptible(). khungtaskd reports a task that
 * stayed in D state without being scheduled for longer than
 * kernel.hung_task_timeout_secs (120 s by default); it checks every
 * hung_task_check_interval_secs, which defaults to the timeout. The spec
 * boots with sysctl.kernel.hung_task_timeout_secs=2, so within about
 * 2-4 s the kernel prints "INFO: task insmod:N blocked for more than 2
 * seconds." with the task's call trace. The report changes nothing for
 * the task: init then returns 0 and the module loads and unloads
 * normally. (syzkaller: "INFO: task hung in hung_task_init".)
 */
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/sched.h>

MODULE_DESCRIPTION("kmodlab test: hung task in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static uint seconds = 6;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long init sleeps in D state (default 6)");

static int __init hung_task_init(void)
{
	pr_info("hung_task: sleeping uninterruptibly for %u s\n", seconds);
	schedule_timeout_uninterruptible(seconds * HZ);
	pr_info("hung_task: woke up\n");
	return 0;
}

static void __exit hung_task_exit(void)
{
	pr_info("hung_task: exit\n");
}

module_init(hung_task_init);
module_exit(hung_task_exit);
