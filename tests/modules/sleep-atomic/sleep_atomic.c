// SPDX-License-Identifier: GPL-2.0
/*
 * sleep_atomic - sleeping under a spinlock: a GFP_KERNEL allocation (which
 * may sleep) while a spinlock is held. DEBUG_ATOMIC_SLEEP checks every
 * might_sleep() point: "BUG: sleeping function called from invalid context"
 * at the allocation, even though this allocation does not sleep. Init goes
 * on: the module loads and unloads. (syzkaller: "BUG: sleeping function
 * called from invalid context in sleep_atomic_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

MODULE_DESCRIPTION("kmodlab test: a GFP_KERNEL allocation under a spinlock");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static DEFINE_SPINLOCK(cache_lock);
static void *cache;

static int __init sleep_atomic_init(void)
{
	spin_lock(&cache_lock);
	cache = kmalloc(64, GFP_KERNEL);
	spin_unlock(&cache_lock);
	if (!cache)
		return -ENOMEM;
	pr_info("sleep_atomic: cache allocated\n");
	return 0;
}

static void __exit sleep_atomic_exit(void)
{
	kfree(cache);
	pr_info("sleep_atomic: exit\n");
}

module_init(sleep_atomic_init);
module_exit(sleep_atomic_exit);
