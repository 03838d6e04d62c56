// SPDX-License-Identifier: GPL-2.0
/*
 * memory_info - lab step 10: the memory areas of the current process.
 *
 * On load, walks the virtual memory areas (VMAs) of the process loading the
 * module with the VMA iterator (VMA_ITERATOR, for_each_vma), holding the
 * mm's lock for reading, and prints each area as "start-end" in hex, as
 * /proc/PID/maps does, then how many there were.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/sched.h>

MODULE_DESCRIPTION("Memory areas of the current process");
MODULE_AUTHOR("kmodlab");
MODULE_LICENSE("GPL");

static int __init memory_info_init(void)
{
	struct mm_struct *mm = current->mm;
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int count = 0;

	pr_info("memory_info: pid %d (%s)\n", current->pid, current->comm);
	if (!mm) {
		pr_info("memory_info: no user memory (a kernel thread)\n");
		return 0;
	}

	/* TODO 1/6: with mmap_read_lock() held, walk the VMAs with for_each_vma(vmi, vma): print "memory_info: START-END" in hex, count them */
	mmap_read_lock(mm);
	for_each_vma(vmi, vma) {
		pr_info("memory_info: %lx-%lx\n", vma->vm_start, vma->vm_end);
		count++;
	}
	mmap_read_unlock(mm);
	/* TODO 2/1: print how many VMAs there were: "memory_info: N VMAs" */
	pr_info("memory_info: %d VMAs\n", count);
	return 0;
}

static void __exit memory_info_exit(void)
{
	pr_info("memory_info: unloaded\n");
}

module_init(memory_info_init);
module_exit(memory_info_exit);
