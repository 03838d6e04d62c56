// SPDX-License-Identifier: GPL-2.0
/*
 * err_mod - lab step 3: a module that does not compile.
 *
 * Init prints the kernel's name and release from init_utsname(), which is
 * declared in <linux/utsname.h>; without that header, the compiler stops at
 * "implicit declaration of function 'init_utsname'". Read the first error,
 * find the header that declares the function, include it.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
/* TODO 1/1: the build fails with "implicit declaration of function 'init_utsname'": include the header that declares it */
#include <linux/utsname.h>

MODULE_DESCRIPTION("Error module");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init err_init(void)
{
	pr_info("err_mod: running on %s %s\n", init_utsname()->sysname,
		init_utsname()->release);
	return 0;
}

static void __exit err_exit(void)
{
	pr_info("err_mod: unloaded\n");
}

module_init(err_init);
module_exit(err_exit);
