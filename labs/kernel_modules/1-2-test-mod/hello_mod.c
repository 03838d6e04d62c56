// SPDX-License-Identifier: GPL-2.0
/*
 * hello_mod - lab steps 1-2: the smallest module.
 *
 * Prints "Hello!" on load and "Goodbye!" on unload with pr_debug(), which
 * only reaches the kernel log because Kbuild compiles it with -DDEBUG.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("Simple module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int my_hello_init(void)
{
	/* TODO 1/1: print "Hello!" with pr_debug() */
	pr_debug("Hello!\n");
	return 0;
}

static void hello_exit(void)
{
	/* TODO 2/1: print "Goodbye!" with pr_debug() */
	pr_debug("Goodbye!\n");
}

module_init(my_hello_init);
module_exit(hello_exit);
