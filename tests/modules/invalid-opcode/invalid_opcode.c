// SPDX-License-Identifier: GPL-2.0
/*
 * invalid_opcode - a bare ud2 instruction in module init.
 *
 * BUG() is also a ud2, but one listed in the __bug_table, which makes the
 * kernel print "kernel BUG at file:line!". This ud2 is in no table, so the
 * kernel treats it as what it is, an undefined instruction: it prints
 * "Oops: invalid opcode: 0000 [#1]" with an oops in invalid_opcode_init
 * and kills insmod. (syzkaller: "invalid opcode in invalid_opcode_init".)
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: undefined instruction in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init invalid_opcode_init(void)
{
	pr_info("invalid_opcode: executing ud2\n");
	asm volatile("ud2");
	unreachable();
}

static void __exit invalid_opcode_exit(void)
{
	pr_info("invalid_opcode: exit\n");
}

module_init(invalid_opcode_init);
module_exit(invalid_opcode_exit);
