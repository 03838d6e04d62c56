# kmodlab's gdb setup for one module: `kmodlab gdb` writes this file into the run directory,
# after the settings it reads (KMODLAB_SOCKET, KMODLAB_MODULE, KMODLAB_KO), and
# has gdb source it before the user's own commands.
#
# How the module gets its symbols: the guest was stopped (QMP `stop`) before the agent was asked
# to load the module, so nothing of the load has run yet. A breakpoint on the entry of the
# kernel's do_init_module() (called once the module is laid out, relocated and listed in sysfs,
# just before its init function runs) reads the module's `struct module *` from %rdi. The
# addresses of all its sections are what /sys/module/NAME/sections/ shows: `mod->sect_attrs`,
# whose first member is a `struct attribute_group` with a NULL-terminated array of binary
# attributes, one per section, each with the section's name and its address in `private`.
# `add-symbol-file` then places the .ko's DWARF at those addresses, and a breakpoint on the init
# function (after its prologue: its first line) stops before that line runs.
#
# An oops stops gdb too: breakpoints on the entries of __die(str, regs, err), which page faults
# and die() (invalid opcode from BUG(), ...) go through, and die_addr(str, regs, err, addr),
# which general protection faults go through (a NULL dereference under KASAN is one), print
# where the fault happened from `regs`. The entry code that turned the fault into a call has no DWARF
# call frame information, so an unwinder of our own carries `bt` across it from the pt_regs it
# saved, on to the faulting module line and its callers.

import gdb
import gdb.unwinder


def _quote(path):
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sections(mod):
    """The module's sections as (name, address), as /sys/module/NAME/sections/ lists them."""
    group_type = gdb.lookup_type("struct attribute_group").pointer()
    attrs = mod["sect_attrs"].cast(group_type)["bin_attrs"]
    out = []
    i = 0
    while int(attrs[i]) != 0:
        attr = attrs[i].dereference()
        out.append((attr["attr"]["name"].string(), int(attr["private"])))
        i += 1
    return out


def _add_symbols(sections):
    command = "add-symbol-file " + _quote(KMODLAB_KO)
    for name, addr in sections:
        if name == ".text":
            command += " 0x%x" % addr
    for name, addr in sections:
        if name != ".text":
            command += " -s %s 0x%x" % (name, addr)
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off")
    try:
        gdb.execute(command, to_string=True)
    finally:
        gdb.execute("set confirm " + ("on" if confirm else "off"))


def _rust_init():
    """A Rust module's own `init` (`impl kernel::Module for ...`, named
    `CRATE::{impl#N}::init`): the kernel calls the `init_module` that `module!` generates,
    which calls it, mostly inlined."""
    listing = gdb.execute("info functions -q -n ::init$", to_string=True)
    for line in listing.splitlines():
        name = line.split("fn ", 1)[1].split("(", 1)[0] if "\tfn " in line else ""
        if name.startswith(KMODLAB_MODULE + "::{impl#"):
            return name
    return None


def _init_breakpoint(mod):
    """A breakpoint on the module's init function, after its prologue."""
    init = int(mod["init"])
    block = gdb.block_for_pc(init)
    function = block.function if block is not None else None
    if function is None or function.symtab is None:
        return gdb.Breakpoint("*0x%x" % init, temporary=True)
    if function.symtab.filename.endswith(".rs"):
        name = _rust_init()
        if name is not None:
            return gdb.Breakpoint(function=name, temporary=True)
    return gdb.Breakpoint(
        source=function.symtab.filename, function=function.name, temporary=True
    )


def _where(pc):
    """`function (file:line)` of a code address, as far as the symbols tell."""
    block = gdb.block_for_pc(pc)
    function = block.function.print_name if block is not None and block.function else None
    sal = gdb.find_pc_line(pc)
    place = "0x%x" % pc if function is None else function
    if sal.symtab is not None and sal.line:
        place += " (%s:%d)" % (sal.symtab.filename, sal.line)
    return place


class OopsBreakpoint(gdb.Breakpoint):
    """Stops on the entry of __die() or die_addr() and says where the fault happened."""

    def stop(self):
        text = gdb.parse_and_eval("(const char *)$rdi").string()
        regs = gdb.parse_and_eval("(struct pt_regs *)$rsi")
        ip = int(regs["ip"])
        print("kmodlab: oops (%s) at 0x%x in %s" % (text, ip, _where(ip)))
        print(
            "kmodlab: stopped in the kernel's oops path (%s); `bt` goes on through the fault "
            "to the faulting line" % self.location.lstrip("*")
        )
        return True


class _FrameId:
    """A frame's identity for gdb: its stack pointer and code address, as gdb.Values (gdb 13
    has no class of its own for it; any object with these attributes does)."""

    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class EntryUnwinder(gdb.unwinder.Unwinder):
    """Unwinds the kernel's exception entry code (asm_exc_*), which has no DWARF call frame
    information: its stack pointer, once it called the C handler, points at the pt_regs it
    saved, and the interrupted frame's registers are those."""

    def __init__(self):
        super().__init__("kmodlab-exception-entry")

    def __call__(self, pending_frame):
        pc_value = pending_frame.read_register("rip")
        pc = int(pc_value)
        block = gdb.block_for_pc(pc)
        name = None
        if block is not None and block.function is not None:
            name = block.function.name
        else:
            symbol = gdb.execute("info symbol 0x%x" % pc, to_string=True)
            name = symbol.split(" ")[0]
        if not name or not name.startswith("asm_exc_"):
            return None
        sp_value = pending_frame.read_register("rsp")
        regs = gdb.Value(int(sp_value)).cast(gdb.lookup_type("struct pt_regs").pointer()).dereference()
        info = pending_frame.create_unwind_info(_FrameId(sp_value, pc_value))
        u64 = gdb.lookup_type("unsigned long")
        # gdb takes every frame above a normal one for a caller, and looks its line up at
        # pc - 1, before the return address. The interrupted frame's pc is the faulting
        # instruction itself, so it is given one byte on, inside that same instruction: its
        # line, locals and inlined functions are then the faulting instruction's.
        info.add_saved_register("rip", (regs["ip"] + 1).cast(u64))
        for reg, field in (
            ("rsp", "sp"),
            ("rbp", "bp"),
            ("rbx", "bx"),
            ("r12", "r12"),
            ("r13", "r13"),
            ("r14", "r14"),
            ("r15", "r15"),
        ):
            info.add_saved_register(reg, regs[field].cast(u64))
        return info


def kmodlab_start():
    gdb.execute("target remote " + KMODLAB_SOCKET, to_string=True)
    gdb.unwinder.register_unwinder(None, EntryUnwinder(), replace=True)
    loader = gdb.Breakpoint("*do_init_module", internal=True)
    loader.silent = True
    mod = None
    while True:
        hits = loader.hit_count
        said = gdb.execute("continue", to_string=True)
        if loader.hit_count == hits:
            # Stopped for another reason (Ctrl-C, the VM went away): the prompt is the user's.
            loader.delete()
            print(said, end="")
            print("kmodlab: stopped before %s's init was reached" % KMODLAB_MODULE)
            return
        mod = gdb.parse_and_eval("(struct module *)$rdi")
        if mod["name"].string() == KMODLAB_MODULE:
            break
    loader.delete()
    _add_symbols(_sections(mod))
    for function in ("__die", "die_addr"):
        OopsBreakpoint("*" + function, internal=True).silent = True
    init = _init_breakpoint(mod)
    init.silent = True
    gdb.execute("continue", to_string=True)
    frame = gdb.selected_frame()
    print(
        "kmodlab: %s is loading: stopped in its init, %s, before its first line runs"
        % (KMODLAB_MODULE, _where(frame.pc()))
    )
    gdb.execute("frame", to_string=False)


kmodlab_start()
