// SPDX-License-Identifier: GPL-2.0
/*
 * list_corruption - list_del() of an entry that is no longer on its list.
 *
 * The first list_del() unlinks the entry and poisons its pointers
 * (->next = LIST_POISON1, ->prev = LIST_POISON2). The second one is caught
 * by the list debugging checks (CONFIG_DEBUG_LIST, CONFIG_LIST_HARDENED)
 * before it writes through the poison: the kernel prints
 * "list_del corruption, ffff...->next is LIST_POISON1 (dead000000000100)"
 * and, as CONFIG_BUG_ON_DATA_CORRUPTION is set, hits BUG(): "kernel BUG at
 * lib/list_debug.c:N!", an oops in __list_del_entry_valid_or_report called
 * from list_corruption_init, and insmod is killed. (syzkaller: "BUG:
 * corrupted list in list_corruption_init".)
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: list_del twice in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static LIST_HEAD(items);

static struct item {
	int value;
	struct list_head node;
} one = { .value = 1 };

static int __init list_corruption_init(void)
{
	list_add(&one.node, &items);
	pr_info("list_corruption: deleting the same entry twice\n");
	list_del(&one.node);
	list_del(&one.node);
	pr_info("list_corruption: survived (must never print)\n");
	return 0;
}

static void __exit list_corruption_exit(void)
{
	pr_info("list_corruption: exit\n");
}

module_init(list_corruption_init);
module_exit(list_corruption_exit);
