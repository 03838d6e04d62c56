// SPDX-License-Identifier: GPL-2.0
/*
 * clean_debug - a module with none of the bugs the debug lab kernel finds:
 * allocations kept in a global list and freed at exit, one freed at once,
 * a spinlock taken and released, a GFP_ATOMIC allocation under it. On the
 * debug lab kernel it must pass: no leak (kmodlab's own guest and the kernel's
 * objects are not the module's), no KASAN, lockdep or atomic-sleep report.
 */
#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

MODULE_DESCRIPTION("kmodlab test: a clean module for the debug lab kernel");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

struct item {
	struct list_head node;
	int value;
};

static LIST_HEAD(items);
static DEFINE_SPINLOCK(items_lock);

static void free_items(void)
{
	struct item *it, *next;

	spin_lock(&items_lock);
	list_for_each_entry_safe(it, next, &items, node) {
		list_del(&it->node);
		kfree(it);
	}
	spin_unlock(&items_lock);
}

static int __init clean_debug_init(void)
{
	char *scratch;
	int i;

	scratch = kzalloc(128, GFP_KERNEL);
	if (!scratch)
		return -ENOMEM;
	kfree(scratch);
	for (i = 0; i < 8; i++) {
		struct item *it = kmalloc(sizeof(*it), GFP_KERNEL);

		if (!it) {
			free_items();
			return -ENOMEM;
		}
		it->value = i;
		spin_lock(&items_lock);
		list_add_tail(&it->node, &items);
		spin_unlock(&items_lock);
	}
	pr_info("clean_debug: 8 items\n");
	return 0;
}

static void __exit clean_debug_exit(void)
{
	free_items();
	pr_info("clean_debug: exit\n");
}

module_init(clean_debug_init);
module_exit(clean_debug_exit);
