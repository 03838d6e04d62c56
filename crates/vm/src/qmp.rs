//! A QEMU Machine Protocol client, as much as saving and restoring a VM needs: commands and
//! their answers, and waiting for an event. Every read has the caller's deadline.

use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// A QMP connection in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
}

/// QEMU answered a command with an error, or reported a failed migration: what the caller
/// asked for cannot be done, as opposed to a deadline or a lost connection. Carried inside the
/// `io::Error` of [`Qmp`]'s methods ([`Refused::of`] finds it).
#[derive(Debug)]
pub struct Refused {
    /// The command (`migrate`, `cont`, ...), or `migration` for a failed migration.
    pub command: String,
    /// QEMU's description.
    pub desc: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMP {}: {}", self.command, self.desc)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal inside `e`, if QEMU refused.
    pub fn of(e: &io::Error) -> Option<&Refused> {
        e.get_ref()?.downcast_ref::<Refused>()
    }

    fn error(command: &str, desc: &str) -> io::Error {
        io::Error::other(Refused {
            command: command.into(),
            desc: desc.into(),
        })
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("QMP: no {what} in time"))
}

impl Qmp {
    /// Takes QEMU's QMP connection (QEMU connects to a socket the host listens on), reads the
    /// greeting and enters command mode.
    pub fn new(stream: UnixStream, deadline: Instant) -> io::Result<Qmp> {
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = q.read(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!(
                "QMP: unexpected greeting {greeting}"
            )));
        }
        q.execute("qmp_capabilities", Value::Null, deadline)?;
        Ok(q)
    }

    fn read(&mut self, deadline: Instant) -> io::Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("answer"));
        }
        self.reader.get_ref().set_read_timeout(Some(left))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QMP: QEMU closed the connection",
            )),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| io::Error::other(format!("QMP: bad message {line:?}: {e}"))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(timed_out("answer"))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a command; its `return` value, or its error as an `io::Error`.
    pub fn execute(&mut self, command: &str, args: Value, deadline: Instant) -> io::Result<Value> {
        let msg = if args.is_null() {
            json!({ "execute": command })
        } else {
            json!({ "execute": command, "arguments": args })
        };
        self.writer.write_all(format!("{msg}\n").as_bytes())?;
        loop {
            let v = self.read(deadline)?;
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            let why = v["error"]["desc"].as_str().unwrap_or("unknown error");
            return Err(Refused::error(command, why));
        }
    }

    /// Waits for the MIGRATION event that ends a migration: `Ok` when it completed.
    pub fn wait_migration(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let v = match self.events.is_empty() {
                false => self.events.remove(0),
                true => self.read(deadline)?,
            };
            if v["event"] != "MIGRATION" {
                continue;
            }
            match v["data"]["status"].as_str() {
                Some("completed") => return Ok(()),
                Some(s @ ("failed" | "cancelled")) => return Err(Refused::error("migration", s)),
                _ => {}
            }
        }
    }

    /// Resumes the guest after a migration. QEMU announces a completed outgoing migration
    /// before it leaves the `finish-migrate` run state, and refuses `cont` until then
    /// ("Migration is not finalized yet"); that last step has no event, so the run state is
    /// asked for, at short intervals, until it has moved on.
    pub fn cont_after_migration(&mut self, deadline: Instant) -> io::Result<()> {
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let status = self.execute("query-status", Value::Null, deadline)?;
            if status["status"] != "finish-migrate" {
                break;
            }
            if Instant::now() + pause >= deadline {
                return Err(timed_out("end of the migration"));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
        self.execute("cont", Value::Null, deadline).map(|_| ())
    }

    /// Turns on MIGRATION events (they are off by default).
    pub fn migration_events(&mut self, deadline: Instant) -> io::Result<()> {
        self.execute(
            "migrate-set-capabilities",
            json!({ "capabilities": [{ "capability": "events", "state": true }] }),
            deadline,
        )
        .map(|_| ())
    }
}
