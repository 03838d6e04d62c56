// SPDX-License-Identifier: GPL-2.0
/*
 * hostile - a module that misbehaves towards the tool running it, not the kernel.
 *
 * escape=1      prints terminal escape sequences (a title change, a screen clear, a bell):
 *               kmodlab must show them escaped, never send them to a terminal.
 * flood_ms=N    prints without newlines, as fast as it can, for N ms in init: kmodlab's memory
 *               must stay bounded and console.log must keep what it can and say where it was cut.
 * panic_path=P  prints a Rust panic's first line naming the file P, then BUG()s: kmodlab must
 *               never read P unless it lies inside the module's own directory.
 * slow_read_ms=N  reading this parameter from sysfs takes N ms: a read past its deadline is the
 *               check phase's timeout, and its late answer is never taken for the next one's.
 */
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/sched.h>

MODULE_DESCRIPTION("kmodlab test: a module hostile to the tool running it");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static bool escape;
module_param(escape, bool, 0444);
MODULE_PARM_DESC(escape, "print terminal escape sequences");

static uint flood_ms;
module_param(flood_ms, uint, 0444);
MODULE_PARM_DESC(flood_ms, "print without newlines for this many milliseconds");

static char *panic_path;
module_param(panic_path, charp, 0444);
MODULE_PARM_DESC(panic_path, "the file a fake Rust panic names");

static uint slow_read_ms;

static int slow_get(char *buffer, const struct kernel_param *kp)
{
	msleep(slow_read_ms);
	return param_get_uint(buffer, kp);
}

static const struct kernel_param_ops slow_ops = {
	.set = param_set_uint,
	.get = slow_get,
};
module_param_cb(slow_read_ms, &slow_ops, &slow_read_ms, 0444);
MODULE_PARM_DESC(slow_read_ms, "reading this parameter takes this many milliseconds");

static int __init hostile_init(void)
{
	unsigned long end;

	if (escape)
		pr_info("hostile: title \x1b]0;pwned\x07 clear \x1b[2J csi \xc2\x9b" "31m end\n");
	if (flood_ms) {
		end = jiffies + msecs_to_jiffies(flood_ms);
		pr_info("hostile: flooding for %u ms\n", flood_ms);
		while (time_before(jiffies, end)) {
			pr_cont("flood-without-newline ");
			cond_resched();
		}
		pr_info("\nhostile: flood over\n");
	}
	if (panic_path) {
		pr_emerg("rust_kernel: panicked at %s:1:1:\n", panic_path);
		pr_emerg("hostile: a panic that names a file outside the module\n");
		BUG();
	}
	pr_info("hostile: loaded\n");
	return 0;
}

static void __exit hostile_exit(void)
{
	pr_info("hostile: unloaded\n");
}

module_init(hostile_init);
module_exit(hostile_exit);
