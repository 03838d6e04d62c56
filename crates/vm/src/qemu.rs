//! QEMU's command line, one small pure function per concern.

use std::path::Path;

/// The accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    /// The name QEMU and the JSON output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Parses `kvm` or `tcg`.
    pub fn from_name(s: &str) -> Option<Accel> {
        match s {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

/// The machine without default devices, no display, no reboot (a reboot or panic ends QEMU).
pub fn machine_args(accel: Accel, memory_mb: u32, cpus: u32) -> Vec<String> {
    let mut v: Vec<String> = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    .map(String::from)
    .to_vec();
    v.extend(["-machine".into(), "pc".into()]);
    v.extend(["-accel".into(), accel.as_str().into()]);
    v.extend([
        "-cpu".into(),
        if accel == Accel::Kvm { "host" } else { "max" }.into(),
    ]);
    v.extend(["-m".into(), format!("{memory_mb}M")]);
    v.extend(["-smp".into(), cpus.to_string()]);
    v
}

/// The kernel, its initramfs and its command line.
pub fn boot_args(kernel: &Path, initrd: Option<&Path>, append: &str) -> Vec<String> {
    let mut v = vec!["-kernel".into(), kernel.display().to_string()];
    if let Some(initrd) = initrd {
        v.extend(["-initrd".into(), initrd.display().to_string()]);
    }
    v.extend(["-append".into(), append.to_string()]);
    v
}

/// The serial console on QEMU's standard output.
pub fn console_args() -> Vec<String> {
    vec!["-serial".into(), "stdio".into()]
}

/// The agent's virtio-serial port, connected to a Unix socket the host listens on.
pub fn agent_args(socket: &Path, port_name: &str) -> Vec<String> {
    vec![
        "-device".into(),
        "virtio-serial-pci".into(),
        "-chardev".into(),
        format!("socket,id=agent,path={}", socket.display()),
        "-device".into(),
        format!("virtserialport,chardev=agent,name={port_name}"),
    ]
}

/// QEMU's monitor (QMP), connecting to a Unix socket the host listens on.
pub fn qmp_args(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=qmp,path={}", socket.display()),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]
}

/// QEMU's gdb stub on a Unix socket it listens on (`target remote PATH` in gdb connects to it).
pub fn gdb_args(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=gdb,path={},server=on,wait=off", socket.display()),
        "-gdb".into(),
        "chardev:gdb".into(),
    ]
}

/// Wait for a saved state (`migrate-incoming` over QMP) instead of booting.
pub fn incoming_defer_args() -> Vec<String> {
    vec!["-incoming".into(), "defer".into()]
}

/// The kernel command line: console on the serial port, a panic ends the machine at once, and a
/// quiet boot (the agent turns `ignore_loglevel` on once it runs, so every message of the module
/// under test, debug level included, reaches the console).
pub fn kernel_cmdline(extra: &str) -> String {
    let mut s = String::from(
        "console=ttyS0 panic=-1 quiet loglevel=4 printk.time=1 rdinit=/init \
         i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd mitigations=off \
         tsc=reliable no_timer_check random.trust_cpu=on",
    );
    s.push(' ');
    s.push_str(kmodlab_proto::AGENT_CMDLINE);
    if !extra.is_empty() {
        s.push(' ');
        s.push_str(extra);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_has_no_defaults_and_no_reboot() {
        let a = machine_args(Accel::Tcg, 512, 1);
        assert!(a.contains(&"-nodefaults".to_string()));
        assert!(a.contains(&"-no-reboot".to_string()));
        assert!(a.windows(2).any(|w| w == ["-accel", "tcg"]));
        assert!(a.windows(2).any(|w| w == ["-m", "512M"]));
    }

    #[test]
    fn agent_port_is_named() {
        let a = agent_args(Path::new("/r/agent.sock"), "kmodlab.agent");
        assert!(a.contains(&"socket,id=agent,path=/r/agent.sock".to_string()));
        assert!(a.contains(&"virtserialport,chardev=agent,name=kmodlab.agent".to_string()));
    }

    #[test]
    fn the_gdb_stub_listens_on_a_unix_socket() {
        let a = gdb_args(Path::new("/r/gdb.sock"));
        assert_eq!(
            a,
            [
                "-chardev",
                "socket,id=gdb,path=/r/gdb.sock,server=on,wait=off",
                "-gdb",
                "chardev:gdb"
            ]
        );
    }

    #[test]
    fn cmdline_ends_qemu_on_panic() {
        let c = kernel_cmdline("foo=1");
        assert!(c.starts_with("console=ttyS0 panic=-1"));
        assert!(c.ends_with(" foo=1"));
        assert!(
            c.contains(" kmodlab_agent=1 "),
            "the guest's /init is the agent: {c}"
        );
    }
}
