// SPDX-License-Identifier: GPL-2.0
/*
 * oops_mod - lab step 5: an oops in module init.
 *
 * Init writes through a NULL pointer. The kernel prints an oops naming
 * my_oops_init, kills insmod, and the module stays in the "coming" state,
 * so it cannot be unloaded.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("Oops generating module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int my_oops_init(void)
{
	char *p = NULL;

	pr_info("before init\n");
	/* TODO 1/1: write a character through the NULL pointer p */
	*p = 'a';

	pr_info("after init\n");

	return 0;
}

static void my_oops_exit(void)
{
	pr_info("module goes all out\n");
}

module_init(my_oops_init);
module_exit(my_oops_exit);
