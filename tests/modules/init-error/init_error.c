// SPDX-License-Identifier: GPL-2.0
/*
 * init_error - a module whose init fails.
 *
 * Init prints a line and returns -ENODEV; insmod reports "No such device"
 * and the module never appears in /sys/module.
 */
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: init returns -ENODEV");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init init_error_init(void)
{
	pr_info("init_error: no device here\n");
	return -ENODEV;
}

static void __exit init_error_exit(void)
{
	pr_info("init_error: exit (must never run)\n");
}

module_init(init_error_init);
module_exit(init_error_exit);
