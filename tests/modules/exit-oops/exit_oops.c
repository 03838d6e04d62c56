// SPDX-License-Identifier: GPL-2.0
/*
 * exit_oops - an oops on unload.
 *
 * Init succeeds; exit writes through a NULL pointer, so the oops happens
 * in exit_oops_exit (in .exit.text) while rmmod runs.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("kmodlab test: NULL write in exit");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init exit_oops_init(void)
{
	pr_info("exit_oops: loaded\n");
	return 0;
}

static void __exit exit_oops_exit(void)
{
	int *p = NULL;

	pr_info("exit_oops: writing through NULL\n");
	WRITE_ONCE(*p, 1);
	pr_info("exit_oops: after write (must never print)\n");
}

module_init(exit_oops_init);
module_exit(exit_oops_exit);
