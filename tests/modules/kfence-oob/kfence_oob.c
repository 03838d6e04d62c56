// SPDX-License-Identifier: GPL-2.0
/*
 * kfence_oob - an out-of-bounds read of a KFENCE-guarded kmalloc object.
 *
 * KFENCE (CONFIG_KFENCE, no KASAN needed) hands out one sampled heap
 * allocation every kfence.sample_interval milliseconds from its own pool,
 * where every object has a page to itself between two unmapped guard
 * pages, placed at random against the page's left or right edge. Debian
 * builds it with a sample interval of 0 (off); the spec boots with
 * kfence.sample_interval=1.
 *
 * Init allocates 32-byte objects, sleeping a little between tries so that
 * KFENCE's timer can open its allocation gate, until it gets a KFENCE
 * object (is_kfence_address()), then reads the byte just past the object's
 * edge that touches a guard page: p[32] when the object is right-aligned,
 * p[-1] when it is left-aligned. The read faults; KFENCE reports "BUG:
 * KFENCE: out-of-bounds read in kfence_oob_init" and lets the read go on,
 * so init frees the object and returns 0: the module loads and unloads
 * normally. (syzkaller: "KFENCE: out-of-bounds read in kfence_oob_init".)
 */
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kfence.h>
#include <linux/module.h>
#include <linux/slab.h>

MODULE_DESCRIPTION("kmodlab test: KFENCE out-of-bounds read in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

#define OBJ_SIZE 32

static int __init kfence_oob_init(void)
{
	unsigned long end = jiffies + 5 * HZ;
	unsigned int tries = 0;
	char *p = NULL, *q;
	char c;

	while (time_before(jiffies, end)) {
		p = kmalloc(OBJ_SIZE, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		tries++;
		if (is_kfence_address(p))
			break;
		kfree(p);
		p = NULL;
		usleep_range(500, 1000);
	}
	if (!p) {
		pr_info("kfence_oob: no KFENCE object after %u tries (is kfence.sample_interval set?)\n",
			tries);
		return -EAGAIN;
	}
	/* The byte past the edge of the object that touches a guard page. */
	q = offset_in_page(p) == 0 ? p - 1 : p + OBJ_SIZE;
	pr_info("kfence_oob: KFENCE object after %u tries, %s-aligned: reading p[%td]\n",
		tries, q < p ? "left" : "right", q - p);
	c = READ_ONCE(*q);
	pr_info("kfence_oob: read went on (value %d)\n", c);
	kfree(p);
	return 0;
}

static void __exit kfence_oob_exit(void)
{
	pr_info("kfence_oob: exit\n");
}

module_init(kfence_oob_init);
module_exit(kfence_oob_exit);
