// SPDX-License-Identifier: GPL-2.0
/*
 * params - module parameters, visible in sysfs.
 *
 * A string and an int parameter with mode 0444, so they can be read back
 * from /sys/module/params/parameters/. A value with spaces
 * (label="two words") must reach the module as one value.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

MODULE_DESCRIPTION("kmodlab test: module parameters");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static char *label = "none";
module_param(label, charp, 0444);
MODULE_PARM_DESC(label, "A string shown in the log and in sysfs");

static int count = 1;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "An integer shown in the log and in sysfs");

static int __init params_init(void)
{
	pr_info("label=[%s] count=%d\n", label, count);
	return 0;
}

static void __exit params_exit(void)
{
	pr_info("params: exit\n");
}

module_init(params_init);
module_exit(params_exit);
