// SPDX-License-Identifier: GPL-2.0
/*
 * slab_oob - a slab out-of-bounds write: a string of 16 characters copied
 * into a 16-byte buffer, its terminating NUL one byte past the end (the
 * classic off-by-one). KASAN reports the write and lets init go on.
 * (syzkaller: "KASAN: slab-out-of-bounds Write in slab_oob_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/slab.h>

MODULE_DESCRIPTION("kmodlab test: an off-by-one write past a kmalloc buffer");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static const char word[] = "sixteen-letters!";

static int __init slab_oob_init(void)
{
	size_t len = sizeof(word) - 1;
	char *buf;
	size_t i;

	buf = kmalloc(len, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		buf[i] = word[i];
	WRITE_ONCE(buf[i], '\0');
	pr_info("slab_oob: copied %zu bytes\n", len);
	kfree(buf);
	return 0;
}

static void __exit slab_oob_exit(void)
{
	pr_info("slab_oob: exit\n");
}

module_init(slab_oob_init);
module_exit(slab_oob_exit);
