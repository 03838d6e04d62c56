// SPDX-License-Identifier: GPL-2.0
/*
 * printk_mod - lab step 2: the kernel log levels.
 *
 * Init prints one message at each of the eight log levels, from pr_emerg()
 * (KERN_EMERG, 0) to pr_debug() (KERN_DEBUG, 7). pr_debug() only prints
 * when the module is compiled with -DDEBUG (or when dynamic debug turns it
 * on); the others always reach the kernel log, and the console shows those
 * below the console log level (the first number of /proc/sys/kernel/printk).
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

MODULE_DESCRIPTION("One message per log level");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init printk_init(void)
{
	/* TODO 1/7: print "printk_mod: level N (NAME)" at each level from pr_emerg() (0) to pr_info() (6) */
	pr_emerg("printk_mod: level 0 (emerg)\n");
	pr_alert("printk_mod: level 1 (alert)\n");
	pr_crit("printk_mod: level 2 (crit)\n");
	pr_err("printk_mod: level 3 (err)\n");
	pr_warn("printk_mod: level 4 (warning)\n");
	pr_notice("printk_mod: level 5 (notice)\n");
	pr_info("printk_mod: level 6 (info)\n");
	/* TODO 2/1: print "printk_mod: level 7 (debug)" with pr_debug() */
	pr_debug("printk_mod: level 7 (debug)\n");
	return 0;
}

static void __exit printk_exit(void)
{
	pr_info("printk_mod: unloaded\n");
}

module_init(printk_init);
module_exit(printk_exit);
