// SPDX-License-Identifier: GPL-2.0
/*
 * gpf - a read through a non-canonical pointer.
 *
 * 0xdead000000000100 is LIST_POISON1, what list_del() leaves in ->next. It
 * is not a canonical x86-64 address, so the CPU raises a general protection
 * fault (not a page fault) and the kernel prints "Oops: general protection
 * fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]"
 * with an oops in gpf_init, and kills insmod. (syzkaller: "general
 * protection fault in gpf_init".)
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: general protection fault in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init gpf_init(void)
{
	unsigned long *p = (unsigned long *)0xdead000000000100UL;

	pr_info("gpf: reading through a non-canonical pointer\n");
	pr_info("gpf: read %lu (must never print)\n", READ_ONCE(*p));
	return 0;
}

static void __exit gpf_exit(void)
{
	pr_info("gpf: exit\n");
}

module_init(gpf_init);
module_exit(gpf_exit);
