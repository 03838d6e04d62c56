// SPDX-License-Identifier: GPL-2.0
/*
 * soft_lockup - module init that hogs the CPU for a few seconds.
 *
 * Init spins for `seconds` (default 6) without ever scheduling. The
 * Debian kernel is built with voluntary preemption, so nothing else runs
 * on this CPU meanwhile, not even the watchdog's per-CPU stopper work.
 * The soft-lockup detector fires after 2 * watchdog_thresh seconds
 * (20 s by default): the spec boots with watchdog_thresh=1, so after
 * about 2 s the kernel prints "watchdog: BUG: soft lockup - CPU#0 stuck
 * for 2s! [insmod:N]" with the registers and the call trace of the
 * spinning init. A soft lockup is only reported: init then returns 0 and
 * the module loads and unloads normally. (syzkaller: "BUG: soft lockup in
 * soft_lockup_init".)
 *
 * The loop reads jiffies only (the timer interrupt still runs), so that
 * the interrupted instruction is in soft_lockup_init itself.
 */
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/processor.h>

MODULE_DESCRIPTION("kmodlab test: soft lockup in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static uint seconds = 6;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long init spins (default 6)");

static int __init soft_lockup_init(void)
{
	unsigned long end = jiffies + seconds * HZ;

	pr_info("soft_lockup: spinning for %u s\n", seconds);
	while (time_before(jiffies, end))
		cpu_relax();
	pr_info("soft_lockup: done spinning\n");
	return 0;
}

static void __exit soft_lockup_exit(void)
{
	pr_info("soft_lockup: exit\n");
}

module_init(soft_lockup_init);
module_exit(soft_lockup_exit);
