// SPDX-License-Identifier: GPL-2.0
/*
 * double_lock - a double spin_lock: two locks of one lock class (initialized
 * at the same spin_lock_init() site), the second taken while the first is held
 * without spin_lock_nested(). Lockdep cannot tell them apart: to it this is
 * the same lock taken twice, a deadlock as soon as both are the same object,
 * and it says so ("possible recursive locking detected"). The locks differ,
 * so init goes on: the module loads and unloads. (A spin_lock() of the very
 * lock held gets the same report and then spins for ever.) (syzkaller:
 * "possible deadlock in double_lock_init".)
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/spinlock.h>

MODULE_DESCRIPTION("kmodlab test: a spinlock class taken twice");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

struct account {
	spinlock_t lock;
	long balance;
};

static struct account accounts[2];

static void transfer(struct account *from, struct account *to, long amount)
{
	spin_lock(&from->lock);
	spin_lock(&to->lock);
	from->balance -= amount;
	to->balance += amount;
	spin_unlock(&to->lock);
	spin_unlock(&from->lock);
}

static int __init double_lock_init(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(accounts); i++) {
		spin_lock_init(&accounts[i].lock);
		accounts[i].balance = 100;
	}
	transfer(&accounts[0], &accounts[1], 10);
	pr_info("double_lock: balances %ld %ld\n", accounts[0].balance,
		accounts[1].balance);
	return 0;
}

static void __exit double_lock_exit(void)
{
	pr_info("double_lock: exit\n");
}

module_init(double_lock_init);
module_exit(double_lock_exit);
