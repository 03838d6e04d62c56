// SPDX-License-Identifier: GPL-2.0
/*
 * leak_init - a memory leak in init: a buffer kmalloc()ed, used and never
 * freed. Nothing points to it once init returns, so kmemleak, scanning after
 * the unload, finds it unreferenced, with init's kmalloc() call on top of the
 * allocation stack. (syzkaller: "memory leak in leak_init_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

MODULE_DESCRIPTION("kmodlab test: a kmalloc in init never freed");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init leak_init_init(void)
{
	char *buf;

	buf = kmalloc(96, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	strscpy(buf, "a buffer nobody frees", 96);
	pr_info("leak_init: %s\n", buf);
	return 0;
}

static void __exit leak_init_exit(void)
{
	pr_info("leak_init: exit\n");
}

module_init(leak_init_init);
module_exit(leak_init_exit);
