// SPDX-License-Identifier: GPL-2.0
/*
 * dyndbg_demo - lab step 11: dynamic debug.
 *
 * Creates /proc/dyndbg_demo; each read of it counts the read and passes
 * two pr_debug() calls, in two functions. Built without -DDEBUG on a kernel
 * with CONFIG_DYNAMIC_DEBUG, each pr_debug() is a site listed in
 * /proc/dynamic_debug/control, off until turned on there: for the whole
 * module, one function, one line; with flags that prefix the message with
 * the thread (t), module (m), function (f) and line (l).
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

MODULE_DESCRIPTION("Dynamic debug demo");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

#define PROC_NAME "dyndbg_demo"

static unsigned int reads;

static void dyndbg_count(void)
{
	reads++;
	/* TODO 1/1: a debug message in dyndbg_count(): "dyndbg_demo: count is now N" */
	pr_debug("dyndbg_demo: count is now %u\n", reads);
}

static int dyndbg_show(struct seq_file *m, void *v)
{
	/* TODO 2/1: a debug message in dyndbg_show(): "dyndbg_demo: read" */
	pr_debug("dyndbg_demo: read\n");
	dyndbg_count();
	seq_printf(m, "reads: %u\n", reads);
	return 0;
}

static int __init dyndbg_demo_init(void)
{
	/* TODO 3/2: create /proc/dyndbg_demo (mode 0444), shown by dyndbg_show(); fail with -ENOMEM if it cannot be made */
	if (!proc_create_single(PROC_NAME, 0444, NULL, dyndbg_show))
		return -ENOMEM;
	pr_info("dyndbg_demo: loaded, read /proc/%s\n", PROC_NAME);
	return 0;
}

static void __exit dyndbg_demo_exit(void)
{
	remove_proc_entry(PROC_NAME, NULL);
	pr_info("dyndbg_demo: unloaded\n");
}

module_init(dyndbg_demo_init);
module_exit(dyndbg_demo_exit);
