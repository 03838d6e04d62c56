// SPDX-License-Identifier: GPL-2.0
/*
 * dyndbg_init - lab step 12: dynamic debug in init.
 *
 * A pr_debug() in init runs before anyone can write to
 * /proc/dynamic_debug/control for this module. The module parameter
 * dyndbg, which every module has on a kernel with CONFIG_DYNAMIC_DEBUG and
 * which modprobe and insmod pass like any other, sets the flags of the
 * module's sites as it loads: insmod dyndbg_init.ko dyndbg=+p shows the
 * message, insmod dyndbg_init.ko does not.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("Dynamic debug in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init dyndbg_init_init(void)
{
	/* TODO 1/1: a debug message in init: "dyndbg_init: debug message from init" */
	pr_debug("dyndbg_init: debug message from init\n");
	pr_info("dyndbg_init: loaded\n");
	return 0;
}

static void __exit dyndbg_init_exit(void)
{
	/* TODO 2/1: a debug message in exit: "dyndbg_init: debug message from exit" */
	pr_debug("dyndbg_init: debug message from exit\n");
	pr_info("dyndbg_init: unloaded\n");
}

module_init(dyndbg_init_init);
module_exit(dyndbg_init_exit);
