// SPDX-License-Identifier: GPL-2.0
/*
 * Prints a message every 100 ms from one second after it is loaded, then "done": kernel messages that appear
 * while a reader follows the log (dmesg --follow).
 */
#include <linux/module.h>
#include <linux/workqueue.h>

static int ticks = 10;
module_param(ticks, int, 0444);
MODULE_PARM_DESC(ticks, "How many ticks to print before done");

static int count;
static void tick(struct work_struct *work);
static DECLARE_DELAYED_WORK(ticker_work, tick);

static void tick(struct work_struct *work)
{
	if (count < ticks) {
		pr_info("ticker: tick %d\n", ++count);
		schedule_delayed_work(&ticker_work, msecs_to_jiffies(100));
	} else {
		pr_info("ticker: done\n");
	}
}

static int __init ticker_init(void)
{
	pr_info("ticker: loaded\n");
	schedule_delayed_work(&ticker_work, msecs_to_jiffies(1000));
	return 0;
}

static void __exit ticker_exit(void)
{
	cancel_delayed_work_sync(&ticker_work);
	pr_info("ticker: exit after %d ticks\n", count);
}

module_init(ticker_init);
module_exit(ticker_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Prints a message every 100 ms after it is loaded");
