//! Kernel log records, in the two forms the kernel hands them out: `/dev/kmsg` records
//! ([`parse_record`]) and the syslog(2) text buffer ([`syslog_records`]). Both are read field by
//! field as util-linux's dmesg reads them, so what is parsed here is what dmesg shows. Parsers take
//! bytes and return values; they never open files.
#![deny(missing_docs)]

mod cnum;
mod kmsg;
mod syslog;

pub use kmsg::{parse_record, KmsgRecord};
pub use syslog::{syslog_records, SyslogRecord, SyslogRecords};

/// A time since boot as `struct timeval` holds it (seconds may be negative in a hand-made file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timeval {
    /// Whole seconds.
    pub sec: i64,
    /// Microseconds (0-999999 when read from /dev/kmsg; as written in a syslog file).
    pub usec: i64,
}

impl Timeval {
    /// The time in microseconds.
    pub fn usec(&self) -> i64 {
        self.sec.saturating_mul(1_000_000).saturating_add(self.usec)
    }

    /// Whether the time is not zero (`timerisset`).
    pub fn is_set(&self) -> bool {
        self.sec != 0 || self.usec != 0
    }
}
