// SPDX-License-Identifier: GPL-2.0
/*
 * panic - panic() in module init.
 *
 * Init calls panic(): the kernel prints "Kernel panic - not syncing:
 * kmodlab panic test" and stops; the VM ends and nothing can be unloaded.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/panic.h>

MODULE_DESCRIPTION("kmodlab test: panic in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init panic_init(void)
{
	pr_info("panic: about to panic\n");
	panic("kmodlab panic test");
	return 0;
}

static void __exit panic_exit(void)
{
	pr_info("panic: exit\n");
}

module_init(panic_init);
module_exit(panic_exit);
