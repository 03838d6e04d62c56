// SPDX-License-Identifier: GPL-2.0
/*
 * bug - BUG() in module init.
 *
 * Init hits BUG(): the kernel prints "kernel BUG at .../bug.c:N!" and an
 * invalid-opcode oops in bug_init, and kills insmod.
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: BUG in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init bug_init(void)
{
	pr_info("bug: about to BUG\n");
	BUG();
	return 0;
}

static void __exit bug_exit(void)
{
	pr_info("bug: exit\n");
}

module_init(bug_init);
module_exit(bug_exit);
