// SPDX-License-Identifier: GPL-2.0
/*
 * @NAME@ - a kernel module made by `kmodlab new`.
 *
 * Prints a greeting with its parameter on load and a farewell on unload.
 * Try: kmodlab run . count=3      (boots a VM, loads, shows the messages, unloads)
 *      kmodlab test .             (runs the cases in kmodlab.toml)
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

MODULE_DESCRIPTION("@NAME@: a kmodlab starter module");
MODULE_AUTHOR("you");
MODULE_LICENSE("GPL");

static int count = 1;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "How many times to say hello");

static int __init @MOD@_init(void)
{
	int i;

	for (i = 0; i < count; i++)
		pr_info("@MOD@: hello (%d of %d)\n", i + 1, count);
	return 0;
}

static void __exit @MOD@_exit(void)
{
	pr_info("@MOD@: goodbye\n");
}

module_init(@MOD@_init);
module_exit(@MOD@_exit);
