// SPDX-License-Identifier: GPL-2.0
/*
 * supermodule (mod1.c) - lab step 4: one module built from two objects.
 *
 * Kbuild links mod1.o and mod2.o into supermodule.ko; init and exit here
 * call functions that live in mod2.c.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("Multi-file module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

extern void print_hello(void);
extern void print_goodbye(void);

static int multi_init(void)
{
	pr_info("multi_init\n");
	/* TODO 1/1: call print_hello(), defined in mod2.c */
	print_hello();
	return 0;
}

static void multi_exit(void)
{
	pr_info("multi_exit\n");
	/* TODO 2/1: call print_goodbye(), defined in mod2.c */
	print_goodbye();
}

module_init(multi_init);
module_exit(multi_exit);
