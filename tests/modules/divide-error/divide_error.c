// SPDX-License-Identifier: GPL-2.0
/*
 * divide_error - an integer division by zero in module init.
 *
 * The divisor is read from a volatile variable so that the compiler can
 * neither fold the division nor drop it: the CPU executes an idiv by zero
 * and raises #DE, and the kernel prints "Oops: divide error: 0000 [#1]"
 * with an oops in divide_error_init, and kills insmod. (syzkaller: "divide
 * error in divide_error_init".)
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: division by zero in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static volatile int divisor;	/* always 0 */
static volatile int dividend = 42;

static int __init divide_error_init(void)
{
	int q;

	pr_info("divide_error: dividing %d by %d\n", dividend, divisor);
	q = dividend / divisor;
	pr_info("divide_error: quotient %d (must never print)\n", q);
	return 0;
}

static void __exit divide_error_exit(void)
{
	pr_info("divide_error: exit\n");
}

module_init(divide_error_init);
module_exit(divide_error_exit);
