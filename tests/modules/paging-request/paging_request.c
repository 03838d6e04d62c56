// SPDX-License-Identifier: GPL-2.0
/*
 * paging_request - a read from an unmapped (but canonical) kernel address.
 *
 * Every vmalloc area is followed by a guard page that is never mapped.
 * Init allocates one page with vmalloc() and reads the first byte after
 * it: the read lands in the guard page, so the kernel prints
 * "BUG: unable to handle page fault for address: ffffc9..." with
 * "#PF: supervisor read access in kernel mode" and an oops in
 * paging_request_init, and kills insmod. (syzkaller titles this
 * "BUG: unable to handle kernel paging request in paging_request_init".)
 *
 * The buffer is leaked on purpose: the task dies in the middle of init.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/vmalloc.h>

MODULE_DESCRIPTION("kmodlab test: read from a vmalloc guard page in init");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init paging_request_init(void)
{
	char *buf = vmalloc(PAGE_SIZE);

	if (!buf)
		return -ENOMEM;
	pr_info("paging_request: reading past a one-page vmalloc buffer\n");
	pr_info("paging_request: read %d (must never print)\n", READ_ONCE(buf[PAGE_SIZE]));
	vfree(buf);
	return 0;
}

static void __exit paging_request_exit(void)
{
	pr_info("paging_request: exit\n");
}

module_init(paging_request_init);
module_exit(paging_request_exit);
