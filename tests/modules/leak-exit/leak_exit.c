// SPDX-License-Identifier: GPL-2.0
/*
 * leak_exit - a leak at unload: init allocates a table and keeps it in a
 * global pointer (referenced, no leak while the module is loaded); the exit
 * function forgets to free it. Once the module's memory is gone, nothing
 * points to the table: kmemleak reports it, with the allocation in init.
 * (syzkaller: "memory leak in leak_exit_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>

MODULE_DESCRIPTION("kmodlab test: the exit function forgets to free");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

struct entry {
	int id;
	char name[28];
};

static struct entry *table;

static int __init leak_exit_init(void)
{
	table = kcalloc(4, sizeof(*table), GFP_KERNEL);
	if (!table)
		return -ENOMEM;
	table[0].id = 1;
	pr_info("leak_exit: table of 4 entries at init\n");
	return 0;
}

static void __exit leak_exit_exit(void)
{
	/* Missing: kfree(table); */
	pr_info("leak_exit: exit, table %d not freed\n", table[0].id);
}

module_init(leak_exit_init);
module_exit(leak_exit_exit);
