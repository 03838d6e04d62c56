// SPDX-License-Identifier: GPL-2.0
/*
 * warn - a WARN in module init.
 *
 * Init triggers a warning and still succeeds: the kernel prints a
 * "WARNING: ... at ... warn_init" report and a call trace, the module
 * stays loaded and unloads normally.
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: WARN in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init warn_init(void)
{
	WARN(1, "kmodlab warn test\n");
	return 0;
}

static void __exit warn_exit(void)
{
	pr_info("warn: exit\n");
}

module_init(warn_init);
module_exit(warn_exit);
