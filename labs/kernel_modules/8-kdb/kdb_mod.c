// SPDX-License-Identifier: GPL-2.0
/*
 * kdb_mod - lab step 8 (extra): KDB, the kernel debugger on the serial console.
 *
 * Creates /proc/kdb_bug; a write to it calls kdb_bug_func(), which hits BUG().
 * With kgdboc on the serial console (on the debug lab kernel:
 * echo ttyS0 > /sys/module/kgdboc/parameters/kgdboc) and the kernel told
 * not to reboot on panic (echo 0 > /proc/sys/kernel/panic: kgdb lets an
 * oops through on a kernel set to reboot), the BUG stops the machine in
 * KDB: bt shows kdb_bug_func, lsmod shows kdb_mod, md dumps memory, and
 * go lets the oops go on (the writing process is killed). Otherwise the
 * write is a plain oops.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>

MODULE_DESCRIPTION("KDB demo: a BUG on demand");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

#define PROC_NAME "kdb_bug"

static noinline void kdb_bug_func(void)
{
	pr_info("kdb_mod: about to hit BUG()\n");
	/* TODO 2/1: hit a BUG() here: the kernel stops in KDB when kgdboc is set */
	BUG();
}

static ssize_t kdb_bug_write(struct file *file, const char __user *buf,
			     size_t count, loff_t *ppos)
{
	kdb_bug_func();
	return count;
}

static const struct proc_ops kdb_bug_ops = {
	.proc_write = kdb_bug_write,
};

static int __init kdb_mod_init(void)
{
	/* TODO 1/2: create /proc/kdb_bug (mode 0222) with kdb_bug_ops; fail with -ENOMEM if it cannot be made */
	if (!proc_create(PROC_NAME, 0222, NULL, &kdb_bug_ops))
		return -ENOMEM;
	pr_info("kdb_mod: loaded, write to /proc/%s to hit a BUG\n", PROC_NAME);
	return 0;
}

static void __exit kdb_mod_exit(void)
{
	remove_proc_entry(PROC_NAME, NULL);
	pr_info("kdb_mod: unloaded\n");
}

module_init(kdb_mod_init);
module_exit(kdb_mod_exit);
