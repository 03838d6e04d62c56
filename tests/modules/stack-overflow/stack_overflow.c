// SPDX-License-Identifier: GPL-2.0
/*
 * stack_overflow - unbounded recursion with a big stack frame.
 *
 * Each call of recurse() keeps a 512-byte buffer on the stack and uses it
 * after the recursive call, so the compiler can turn the recursion into
 * neither a loop nor a tail call. The depth limit is a volatile that is
 * never reached; it only keeps gcc from warning about infinite recursion.
 * After about 30 levels the 16 KiB task stack is exhausted. With
 * CONFIG_VMAP_STACK the stack is followed (below) by an unmapped guard
 * page: the push that touches it faults, the CPU cannot deliver the page
 * fault on the broken stack and raises a double fault, whose handler runs
 * on its own stack and prints "BUG: TASK stack guard page was hit at ..."
 * and "Oops: stack guard page: 0000 [#1]", then panics ("Fatal exception
 * in interrupt"): a double fault is not survivable.
 * (syzkaller: "BUG: stack guard page was hit in recurse".)
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>

MODULE_DESCRIPTION("kmodlab test: kernel stack overflow in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static volatile int max_depth = 1 << 30;

static noinline int recurse(int depth)
{
	char buf[512];

	if (depth >= max_depth)
		return 0;
	memset(buf, depth, sizeof(buf));
	barrier_data(buf);
	return recurse(depth + 1) + buf[depth % sizeof(buf)];
}

static int __init stack_overflow_init(void)
{
	pr_info("stack_overflow: recursing without end\n");
	pr_info("stack_overflow: returned %d (must never print)\n", recurse(0));
	return 0;
}

static void __exit stack_overflow_exit(void)
{
	pr_info("stack_overflow: exit\n");
}

module_init(stack_overflow_init);
module_exit(stack_overflow_exit);
