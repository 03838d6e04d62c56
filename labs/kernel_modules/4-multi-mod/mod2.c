// SPDX-License-Identifier: GPL-2.0
/*
 * supermodule (mod2.c) - lab step 4: the second object of supermodule.ko.
 *
 * Defines the functions mod1.c calls; they are not exported, only linked
 * into the same module.
 */
#include <linux/kernel.h>

void print_hello(void);
void print_goodbye(void);

void print_hello(void)
{
	/* TODO 3/1: print "Hello from mod2" */
	pr_info("Hello from mod2\n");
}

void print_goodbye(void)
{
	/* TODO 4/1: print "Goodbye from mod2" */
	pr_info("Goodbye from mod2\n");
}
