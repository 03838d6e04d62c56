//! What kmod reads from the running kernel (`kmodlab_kmod::kernel_state::fuzz_kernel_values`):
//! the input as a sysfs number (`/sys/module/NAME/refcnt`, `coresize`), checked against
//! libkmod's `read_str_long` done with the C library's `strtol`; as
//! `/sys/module/NAME/initstate`; and as `/proc/modules` (the loaded modules' names, and the
//! size it gives a module).
#![no_main]

use kmodlab_kmod::kernel_state::{fuzz_kernel_values, InitState};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;

/// libkmod's `read_str_long(fd, &value, 10)` on a file holding `bytes`: `Some(Some(v))`,
/// `Some(None)` for `EINVAL`, `None` when the number is out of range (kmod versions differ
/// there: some take strtol's saturated value, later ones refuse it).
fn c_read_str_long(bytes: &[u8]) -> Option<Option<i64>> {
    // read_str_safe: at most 31 bytes, then a NUL, which also ends the string early.
    let buf = &bytes[..bytes.len().min(31)];
    let buf = buf.split(|&b| b == 0).next().unwrap_or_default();
    let c = CString::new(buf).expect("no NUL left");
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: errno is thread-local; `c` is NUL-terminated and strtol sets `end` inside it.
    let v = unsafe {
        *libc::__errno_location() = 0;
        libc::strtol(c.as_ptr(), &mut end, 10)
    };
    // SAFETY: as above.
    let (errno, next) = unsafe { (*libc::__errno_location(), *end as u8) };
    let consumed = end as usize - c.as_ptr() as usize;
    if consumed == 0 || !matches!(next, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return Some(None);
    }
    if errno == libc::ERANGE {
        return None;
    }
    Some(Some(v))
}

fuzz_target!(|data: &[u8]| {
    let values = fuzz_kernel_values(data);

    if let Some(expected) = c_read_str_long(data) {
        assert_eq!(values.number, expected);
    }

    if let Ok(state) = values.initstate {
        let text: &[u8] = match state {
            InitState::Live => b"live\n",
            InitState::Coming => b"coming\n",
            InitState::Going => b"going\n",
        };
        assert_eq!(data, text);
    }

    // One name per line that has a word, each a word of the file.
    let text = String::from_utf8_lossy(data);
    assert_eq!(
        values.names.len(),
        text.lines()
            .filter(|l| l.split([' ', '\t']).any(|w| !w.is_empty()))
            .count()
    );
    for name in &values.names {
        assert!(!name.is_empty() && !name.contains([' ', '\t', '\n']));
    }
    assert_eq!(values.sizes.len(), values.names.len().min(16));
    // The first module's size is the second word of its line when that is a plain number.
    let first_line = text
        .lines()
        .find(|l| l.split([' ', '\t']).any(|w| !w.is_empty()));
    if let (Some(line), Some(&size)) = (first_line, values.sizes.first()) {
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        if let (Some(_), Some(second)) = (words.next(), words.next()) {
            if (1..=18).contains(&second.len()) && second.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(size, second.parse::<i64>().unwrap());
            }
        }
    }
});
