// SPDX-License-Identifier: GPL-2.0

//! cmd_mod - lab step 6 in Rust: a module parameter.
//!
//! `str` is a string (C `charp`) parameter with a default;
//! `insmod cmd_mod.ko str=tired` changes what init prints. Permission 0000
//! keeps it out of sysfs.
//!
//! The `module!` macro's `params:` offers integer and bool types only, so
//! `str` is declared the way the macro declares its own: a `kernel_param`
//! in the `__param` section, here with the kernel's own `param_ops_charp`,
//! which parses, allocates and frees the string.

use core::cell::UnsafeCell;
use kernel::{
    bindings,
    module_param::KernelParam,
    prelude::*,
    str::{as_char_ptr_in_const_context, CStrExt},
};

module! {
    type: CmdMod,
    name: "cmd_mod",
    authors: ["kmodlab"],
    description: "Command-line args module",
    license: "GPL",
}

/// Storage for a `charp` parameter: a C `char *`, which `param_ops_charp`
/// points at a copy of the value given at load time.
#[repr(transparent)]
struct CharpParam(UnsafeCell<*mut c_char>);

// SAFETY: The kernel writes the pointer only while it parses the module's
// parameters, before init runs, and frees the copy only after exit. With
// permission 0000 nothing can write it from sysfs in between, so the module
// only ever reads it.
unsafe impl Sync for CharpParam {}

impl CharpParam {
    const fn new(default: &'static CStr) -> Self {
        Self(UnsafeCell::new(
            as_char_ptr_in_const_context(default).cast_mut(),
        ))
    }

    /// The value: the default or the string given at load time.
    fn value(&self) -> &CStr {
        // SAFETY: The pointer is the `'static` default or the kernel's copy of
        // the argument, NUL-terminated, freed only after the module exits.
        unsafe { CStr::from_char_ptr(*self.0.get()) }
    }
}

static STR: CharpParam = CharpParam::new(c"the worm");

/// The parameter's description for `modinfo`, as `MODULE_PARM_DESC` and
/// `module_param` would write them.
#[link_section = ".modinfo"]
#[used(compiler)]
static STR_PARM: [u8; 25] = *b"parm=str:A simple string\0";
#[link_section = ".modinfo"]
#[used(compiler)]
static STR_PARMTYPE: [u8; 19] = *b"parmtype=str:charp\0";

/// What `module_param(str, charp, 0000)` declares in C.
#[link_section = "__param"]
#[used(compiler)]
static STR_PARAM: KernelParam = KernelParam::new(bindings::kernel_param {
    name: as_char_ptr_in_const_context(c"str"),
    mod_: &raw mut bindings::__this_module,
    ops: &raw const bindings::param_ops_charp,
    perm: 0, // not in sysfs
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        arg: STR.0.get().cast(),
    },
});

struct CmdMod;

impl kernel::Module for CmdMod {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // TODO 1/1: print "Early bird gets " and the value of str
        pr_info!("Early bird gets {}\n", STR.value());
        Ok(CmdMod)
    }
}

impl Drop for CmdMod {
    fn drop(&mut self) {
        pr_info!("Exit\n");
    }
}
