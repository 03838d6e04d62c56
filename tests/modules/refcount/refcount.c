// SPDX-License-Identifier: GPL-2.0
/*
 * refcount - a refcount_t decremented past zero.
 *
 * Init drops the only reference (1 -> 0, the object would be freed here)
 * and then drops it once more. refcount_t saturates instead of wrapping and
 * warns: "refcount_t: underflow; use-after-free." followed by a WARNING at
 * lib/refcount.c in refcount_warn_saturate, called from refcount_init.
 * A warning does not stop the task: init returns 0, the module loads and
 * unloads normally. (syzkaller: "WARNING: refcount bug in refcount_init".)
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/refcount.h>

MODULE_DESCRIPTION("kmodlab test: refcount_t underflow in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static refcount_t refs = REFCOUNT_INIT(1);

static int __init refcount_init(void)
{
	if (refcount_dec_and_test(&refs))
		pr_info("refcount: last reference dropped\n");
	pr_info("refcount: dropping it again\n");
	if (refcount_dec_and_test(&refs))
		pr_info("refcount: dropped twice (must never print)\n");
	pr_info("refcount: init returns, refcount reads %u\n", refcount_read(&refs));
	return 0;
}

static void __exit refcount_exit(void)
{
	pr_info("refcount: exit\n");
}

module_init(refcount_init);
module_exit(refcount_exit);
