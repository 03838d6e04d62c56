// SPDX-License-Identifier: GPL-2.0
/*
 * busy_loop - module init that never returns.
 *
 * Init spins on a flag nothing ever clears, so insmod never finishes:
 * the load must hit its deadline (and, if left long enough, the soft
 * lockup detector fires).
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/processor.h>

MODULE_DESCRIPTION("kmodlab test: init spins forever");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static bool spin = true;

static int __init busy_loop_init(void)
{
	pr_info("busy_loop: spinning\n");
	while (READ_ONCE(spin))
		cpu_relax();
	pr_info("busy_loop: done (must never print)\n");
	return 0;
}

static void __exit busy_loop_exit(void)
{
	pr_info("busy_loop: exit\n");
}

module_init(busy_loop_init);
module_exit(busy_loop_exit);
