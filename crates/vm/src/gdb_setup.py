# kmodlab's gdb setup: `kmodlab gdb` and `kmodlab shell --gdb` write this file into the run
# directory after the settings it reads (KMODLAB_SOCKET, KMODLAB_MODULE, KMODLAB_MODULES), and
# gdb sources it before the user's own commands.
#
# The kernel's symbols are gdb's program file: a lab kernel's vmlinux with DWARF, or, for a
# kernel without one, an ELF symbol table kmodlab made from the guest's /proc/kallsyms (names
# and addresses, no types, no lines).
#
# How a module gets its symbols: a breakpoint on the entry of the kernel's do_init_module()
# (called once the module is laid out and relocated, just before its init function runs) reads
# the module's `struct module *` from %rdi and, for each module kmodlab knows the .ko of, places
# the .ko's DWARF at the addresses the kernel chose (`add-symbol-file` with every section), then
# lets the kernel go on. The addresses come from the module's own symbol table in the guest,
# `mod->kallsyms`: the loader relocated every symbol's value to its final address, and kept its
# section index, so for each allocated section one symbol of it, compared with its value in the
# .ko, gives where that section is. Until init ends, that table is the .ko's whole symbol table,
# in the same order; later (a module already loaded when gdb attaches) it is the kernel's cut-down
# copy, matched by name. The `struct module` type comes from the kernel's DWARF, or else from the
# module's own (every .ko defines `__this_module`), read from a copy of it that is dropped again.
#
# `kmodlab gdb` then stops in the module's init function, after its prologue: before its first
# line runs. Modules loaded later (from the shell, or the module's dependencies) get their symbols
# the same way, without stopping.
#
# An oops stops gdb too: breakpoints on the entries of __die(str, regs, err), which page faults
# and die() (invalid opcode from BUG(), ...) go through, and die_addr(str, regs, err, addr),
# which general protection faults go through (a NULL dereference under KASAN is one), print
# where the fault happened from `regs`. The entry code that turned the fault into a call has no
# DWARF call frame information, so an unwinder of our own carries `bt` across it from the
# pt_regs it saved, on to the faulting module line and its callers. pt_regs is read at its
# x86-64 offsets, which are part of the kernel's ABI (ptrace), so no kernel DWARF is needed.

import os
import shutil
import struct

import gdb
import gdb.unwinder

# Offsets of the registers in x86-64's struct pt_regs.
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40,
    "r11": 48, "r10": 56, "r9": 64, "r8": 72, "rax": 80, "rcx": 88,
    "rdx": 96, "rsi": 104, "rdi": 112, "rip": 128, "rsp": 152,
}


def _quote(path):
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quietly(command):
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off")
    try:
        return gdb.execute(command, to_string=True)
    finally:
        gdb.execute("set confirm " + ("on" if confirm else "off"))


def _address(value):
    """A register or pointer value as an address (registers read as signed)."""
    return int(value) & 0xFFFFFFFFFFFFFFFF


def _u64(address):
    return struct.unpack("<Q", bytes(gdb.selected_inferior().read_memory(address, 8)))[0]


class Ko:
    """What the setup needs of a .ko (ELF64, little-endian, relocatable): its allocated
    sections' names by index, and its symbols' (name offset, section index, value)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        headers = [
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
        ]
        names = headers[shstrndx]
        name_at = names[4]

        def name(offset, base):
            end = data.index(b"\0", base + offset)
            return data[base + offset:end].decode("utf-8", "replace")

        self.sections = {}
        self.symbols = []
        strtab_at = 0
        for index, h in enumerate(headers):
            sh_name, sh_type, sh_flags = h[0], h[1], h[2]
            if sh_flags & 2 and sh_type != 0:  # SHF_ALLOC
                self.sections[index] = name(sh_name, name_at)
            if sh_type == 2:  # SHT_SYMTAB
                strtab_at = headers[h[6]][4]
                for i in range(h[5] // 24):
                    st_name, _, _, st_shndx, st_value, _ = struct.unpack_from(
                        "<IBBHQQ", data, h[4] + i * 24
                    )
                    self.symbols.append((st_name, st_shndx, st_value))
        self._data = data
        self._strtab_at = strtab_at
        # gdb places each section of a relocatable file where add-symbol-file says only when
        # every section's address in the file is 0; otherwise it moves all the DWARF by the
        # offset of .text (so .init.text code gets .text's lines). GNU ld's `ld -r` of a module
        # can leave addresses in the section headers (Debian's .data), so gdb gets a copy with
        # them zeroed.
        if any(h[3] != 0 for h in headers):
            patched = bytearray(data)
            for i in range(shnum):
                struct.pack_into("<Q", patched, shoff + i * shentsize + 0x10, 0)
            base = os.path.basename(path)
            self.path = os.path.join(os.path.dirname(KMODLAB_SOCKET), "gdb-" + base)
            with open(self.path, "wb") as f:
                f.write(patched)

    def symbol_name(self, index):
        return _c_string(self._data, self._strtab_at + self.symbols[index][0])


def _c_string(data, at):
    end = data.find(b"\0", at)
    return data[at:end if end >= 0 else len(data)].decode("utf-8", "replace")


_ko_cache = {}
_loaded = set()
# The add-symbol-file commands run, for `python print(kmodlab_commands)`.
kmodlab_commands = []


def _ko(name):
    if name not in _ko_cache:
        _ko_cache[name] = Ko(KMODLAB_MODULES[name])
    return _ko_cache[name]


def _module_type():
    """`struct module *`, from the kernel's DWARF, else from a module's (see the top); None
    without either."""
    try:
        return gdb.lookup_type("struct module").pointer()
    except gdb.error:
        pass
    if not KMODLAB_MODULES:
        return None
    source = KMODLAB_MODULES[KMODLAB_MODULE or sorted(KMODLAB_MODULES)[0]]
    copy = os.path.join(os.path.dirname(KMODLAB_SOCKET), "module-types.ko")
    shutil.copyfile(source, copy)
    _quietly("add-symbol-file %s 0" % _quote(copy))
    return gdb.lookup_type("struct module").pointer()


def _drop_type_copy():
    copy = os.path.join(os.path.dirname(KMODLAB_SOCKET), "module-types.ko")
    for objfile in gdb.objfiles():
        if objfile.filename == copy:
            _quietly("remove-symbol-file %s" % _quote(copy))
            break


def _section_addresses(mod, ko):
    """{section name: address} of the module's allocated sections that have a symbol."""
    kallsyms = mod["kallsyms"]
    symtab = int(kallsyms["symtab"])
    count = int(kallsyms["num_symtab"])
    strtab = int(kallsyms["strtab"])
    table = bytes(gdb.selected_inferior().read_memory(symtab, 24 * count))
    whole = count == len(ko.symbols)
    by_name = {}
    if not whole:
        for i, (_, shndx, value) in enumerate(ko.symbols):
            if shndx in ko.sections:
                by_name.setdefault((ko.symbol_name(i), shndx), value)
    out = {}
    for i in range(1, count):
        st_name, _, _, shndx, value, _ = struct.unpack_from("<IBBHQQ", table, i * 24)
        section = ko.sections.get(shndx)
        if section is None or section in out:
            continue
        if whole:
            original = ko.symbols[i][2]
        else:
            raw = bytes(gdb.selected_inferior().read_memory(strtab + st_name, 128))
            original = by_name.get((_c_string(raw, 0), shndx))
            if original is None:
                continue
        out[section] = value - original
    return out


def _add_symbols(mod, name):
    """Places the .ko of module `name` at its sections' addresses; False when kmodlab does not
    know its .ko or the module is already there."""
    if name not in KMODLAB_MODULES or name in _loaded:
        return False
    ko = _ko(name)
    sections = _section_addresses(mod, ko)
    command = "add-symbol-file " + _quote(ko.path) + " 0x%x" % sections.get(".text", 0)
    for section, address in sorted(sections.items()):
        if section != ".text":
            command += " -s %s 0x%x" % (section, address)
    _drop_type_copy()
    _quietly(command)
    kmodlab_commands.append(command)
    _loaded.add(name)
    return True


class ModuleLoad(gdb.Breakpoint):
    """On the entry of do_init_module(): gives every known module its symbols; stops only for
    the module `kmodlab gdb` debugs, the first time."""

    def __init__(self, module_type):
        super().__init__("*do_init_module", internal=True)
        self.silent = True
        self.module_type = module_type
        self.target = None

    def stop(self):
        mod = gdb.Value(_address(gdb.parse_and_eval("$rdi"))).cast(self.module_type).dereference()
        name = mod["name"].string()
        if _add_symbols(mod, name) and name != KMODLAB_MODULE:
            print("kmodlab: %s is loading: its symbols are loaded" % name)
        self.module_type = gdb.lookup_type("struct module").pointer()
        if name == KMODLAB_MODULE and self.target is None:
            self.target = mod
            return True
        return False


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
    """A breakpoint on the module's init function, after its prologue: where the line the
    function starts at ends. gdb's own prologue analysis stops at the first instruction of
    code from gcc that has no frame pointer (`endbr64; call __fentry__` is not a prologue it
    knows)."""
    init = _address(mod["init"])
    block = gdb.block_for_pc(init)
    function = block.function if block is not None else None
    if function is None or function.symtab is None:
        return gdb.Breakpoint("*0x%x" % init, temporary=True)
    if function.symtab.filename.endswith(".rs"):
        name = _rust_init()
        if name is not None:
            return gdb.Breakpoint(function=name, temporary=True)
    start = _address(block.start)
    sal = gdb.find_pc_line(start)
    body = start
    if sal.symtab is not None and sal.last is not None and start < sal.last + 1 < block.end:
        body = sal.last + 1
    return gdb.Breakpoint("*0x%x" % body, temporary=True)


def _where(pc):
    """`function (file:line)` of a code address, as far as the symbols tell."""
    block = gdb.block_for_pc(pc)
    function = block.function.print_name if block is not None and block.function else None
    sal = gdb.find_pc_line(pc)
    if function is None:
        symbol = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
        function = "0x%x" % pc if symbol.startswith("No symbol") else symbol
    place = function
    if sal.symtab is not None and sal.line:
        place += " (%s:%d)" % (sal.symtab.filename, sal.line)
    return place


class OopsBreakpoint(gdb.Breakpoint):
    """Stops on the entry of __die() or die_addr() and says where the fault happened."""

    def stop(self):
        text = gdb.parse_and_eval("(const char *)$rdi").string()
        ip = _u64(_address(gdb.parse_and_eval("$rsi")) + PT_REGS["rip"])
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
    saved, and the interrupted frame's registers are those.

    A kernel without DWARF (symbols from kallsyms) has no call frame information at all, and
    gdb cannot unwind the C frames between the oops stop and the entry code. There the stop
    itself, on the first instruction of __die() or die_addr(), whose second argument is the
    pt_regs, unwinds straight to the interrupted frame: `bt` skips the oops path's own
    frames and goes on from the faulting line."""

    def __init__(self):
        super().__init__("kmodlab-exception-entry")

    def __call__(self, pending_frame):
        pc_value = pending_frame.read_register("rip")
        pc = _address(pc_value)
        block = gdb.block_for_pc(pc)
        if block is not None and block.function is not None:
            words = [block.function.name]
        else:
            words = gdb.execute("info symbol 0x%x" % pc, to_string=True).split(" ")
        name = words[0]
        if name.startswith("asm_exc_"):
            regs = _address(pending_frame.read_register("rsp"))
        elif name in ("__die", "die_addr") and block is None and words[1:2] == ["in"]:
            regs = _address(pending_frame.read_register("rsi"))
        else:
            return None
        sp_value = pending_frame.read_register("rsp")
        info = pending_frame.create_unwind_info(_FrameId(sp_value, pc_value))
        u64 = gdb.lookup_type("unsigned long")
        # gdb takes every frame above a normal one for a caller, and looks its line up at
        # pc - 1, before the return address. The interrupted frame's pc is the faulting
        # instruction itself, so it is given one byte on, inside that same instruction: its
        # line, locals and inlined functions are then the faulting instruction's.
        info.add_saved_register("rip", gdb.Value(_u64(regs + PT_REGS["rip"]) + 1).cast(u64))
        for reg in ("rsp", "rbp", "rbx", "r12", "r13", "r14", "r15"):
            info.add_saved_register(reg, gdb.Value(_u64(regs + PT_REGS[reg])).cast(u64))
        return info


def _loaded_modules(module_type):
    """The modules the kernel lists now, as `struct module` values."""
    head = int(gdb.parse_and_eval("(unsigned long)&modules"))
    offset = int(gdb.parse_and_eval("(unsigned long)&((struct module *)0)->list"))
    out = []
    node = _u64(head)
    while node != head and len(out) < 4096:
        out.append(gdb.Value(node - offset).cast(module_type).dereference())
        node = _u64(node)
    return out


def kmodlab_attach():
    """`kmodlab shell --gdb`: symbols for the modules loaded now and later, the oops stops; the
    guest stays stopped at the prompt."""
    gdb.execute("target remote " + KMODLAB_SOCKET, to_string=True)
    gdb.unwinder.register_unwinder(None, EntryUnwinder(), replace=True)
    module_type = _module_type()
    if module_type is not None:
        for mod in _loaded_modules(module_type):
            name = mod["name"].string()
            if _add_symbols(mod, name):
                print("kmodlab: %s is loaded: its symbols are loaded" % name)
        ModuleLoad(module_type)
    for function in ("__die", "die_addr"):
        OopsBreakpoint("*" + function, internal=True).silent = True
    print(
        "kmodlab: attached; the guest is stopped. `continue` runs it; modules loaded from now on "
        "get their symbols (%s), and an oops stops here"
        % (", ".join(sorted(KMODLAB_MODULES)) or "no module of kmodlab's")
    )


def kmodlab_start():
    """`kmodlab gdb`: waits for the module's load and stops in its init function."""
    gdb.execute("target remote " + KMODLAB_SOCKET, to_string=True)
    gdb.unwinder.register_unwinder(None, EntryUnwinder(), replace=True)
    loader = ModuleLoad(_module_type())
    said = gdb.execute("continue", to_string=True)
    if loader.target is None:
        # Stopped for another reason (Ctrl-C, the VM went away): the prompt is the user's.
        print(said, end="")
        print("kmodlab: stopped before %s's init was reached" % KMODLAB_MODULE)
        return
    for function in ("__die", "die_addr"):
        OopsBreakpoint("*" + function, internal=True).silent = True
    init = _init_breakpoint(loader.target)
    init.silent = True
    gdb.execute("continue", to_string=True)
    frame = gdb.selected_frame()
    print(
        "kmodlab: %s is loading: stopped in its init, %s, before its first line runs"
        % (KMODLAB_MODULE, _where(frame.pc()))
    )
    gdb.execute("frame", to_string=False)


if KMODLAB_MODULE is None:
    kmodlab_attach()
else:
    kmodlab_start()
