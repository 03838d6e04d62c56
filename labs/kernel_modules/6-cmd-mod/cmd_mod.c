// SPDX-License-Identifier: GPL-2.0
/*
 * cmd_mod - lab step 6: a module parameter.
 *
 * "str" is a charp parameter with a default; insmod cmd_mod.ko str=tired
 * changes what init prints. Permission 0000 keeps it out of sysfs.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("Command-line args module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static char *str = "the worm";

/* TODO 1/2: make str a charp module parameter, permissions 0000, with a description */
module_param(str, charp, 0000);
MODULE_PARM_DESC(str, "A simple string");

static int __init cmd_init(void)
{
	pr_info("Early bird gets %s\n", str);
	return 0;
}

static void __exit cmd_exit(void)
{
	pr_info("Exit\n");
}

module_init(cmd_init);
module_exit(cmd_exit);
