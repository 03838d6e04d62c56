// SPDX-License-Identifier: GPL-2.0
/*
 * unknown_symbol - a module that needs a symbol no kernel exports.
 *
 * The kernel refuses to link it: it logs "Unknown symbol
 * kmodlab_no_such_symbol" and insmod fails with "Unknown symbol in module".
 * Init never runs.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: undefined symbol");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

extern void kmodlab_no_such_symbol(void);

static int __init unknown_symbol_init(void)
{
	pr_info("unknown_symbol: init (must never run)\n");
	kmodlab_no_such_symbol();
	return 0;
}

static void __exit unknown_symbol_exit(void)
{
	pr_info("unknown_symbol: exit (must never run)\n");
}

module_init(unknown_symbol_init);
module_exit(unknown_symbol_exit);
