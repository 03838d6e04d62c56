// SPDX-License-Identifier: GPL-2.0
/*
 * unload_busy - a module that cannot be unloaded.
 *
 * Init takes a reference on the module itself, so its refcount never drops
 * to zero: rmmod (delete_module with O_NONBLOCK) fails with EAGAIN,
 * "Resource temporarily unavailable", and the module stays live.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: a module that holds a reference on itself");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init unload_busy_init(void)
{
	__module_get(THIS_MODULE);
	pr_info("unload_busy: holding a reference on myself\n");
	return 0;
}

static void __exit unload_busy_exit(void)
{
	pr_info("unload_busy: exit (must never run)\n");
}

module_init(unload_busy_init);
module_exit(unload_busy_exit);
