// SPDX-License-Identifier: GPL-2.0
/*
 * slab_uaf - a slab use-after-free: init frees an object, then reads it.
 * KASAN reports the read with the object's allocation and free stacks, then
 * lets init go on: the module loads and unloads. (syzkaller: "KASAN:
 * slab-use-after-free Read in slab_uaf_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>

MODULE_DESCRIPTION("kmodlab test: a read of freed slab memory");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

struct session {
	int id;
	int state;
};

static int __init slab_uaf_init(void)
{
	struct session *s;
	int state;

	s = kmalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	s->id = 1;
	s->state = 2;
	kfree(s);
	state = READ_ONCE(s->state);
	pr_info("slab_uaf: state after free: %d\n", state);
	return 0;
}

static void __exit slab_uaf_exit(void)
{
	pr_info("slab_uaf: exit\n");
}

module_init(slab_uaf_init);
module_exit(slab_uaf_exit);
