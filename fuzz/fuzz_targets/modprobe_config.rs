//! modprobe's configuration parser (`kmodlab_kmod::modprobe_config`): the input as a
//! `modprobe.d` file, and as a kernel command line, then the `modprobe -c` dump of what was
//! read. Every call must return, never panic.
#![no_main]

use kmodlab_kmod::modprobe_config::{underscores, ModprobeConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config = ModprobeConfig::default();
    let messages = config.parse_file(data, "/etc/modprobe.d/fuzz.conf");
    for m in &messages {
        let _ = m.render();
    }
    let messages = config.parse_kernel_cmdline(data);
    for m in &messages {
        let _ = m.render();
    }
    let _ = config.dump();
    for softdep in &config.softdeps {
        let _ = softdep.plain();
    }
    let _ = underscores(&String::from_utf8_lossy(data));
});
