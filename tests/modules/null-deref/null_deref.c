// SPDX-License-Identifier: GPL-2.0
/*
 * null_deref - a NULL pointer read in module init.
 *
 * Unlike the oops lab's store, this is a load: the kernel prints
 * "BUG: kernel NULL pointer dereference, address: 0000000000000000" with
 * "#PF: supervisor read access in kernel mode" and an oops in
 * null_deref_init, and kills insmod.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: NULL read in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init null_deref_init(void)
{
	int *p = NULL;

	pr_info("null_deref: reading through NULL\n");
	pr_info("null_deref: read %d (must never print)\n", READ_ONCE(*p));
	return 0;
}

static void __exit null_deref_exit(void)
{
	pr_info("null_deref: exit\n");
}

module_init(null_deref_init);
module_exit(null_deref_exit);
