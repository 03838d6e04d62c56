//! A phase's `processes` and `vmas`: the lists a module printed, checked against what the guest
//! agent recorded around the same call (the guest's processes, the caller's memory areas).

use kmodlab_events::{PhaseResult, Task, Tasks};
use regex::Regex;
use std::collections::BTreeMap;

/// The named groups a `processes` regex may have; `pid` is required.
pub(crate) const PROCESS_GROUPS: [&str; 3] = ["pid", "ppid", "comm"];
/// The named groups a `vmas` regex must have.
pub(crate) const VMA_GROUPS: [&str; 2] = ["start", "end"];

/// The most items one failure message names; the rest are counted.
const NAMED: usize = 5;

/// The longest name the kernel keeps in a task's `comm` (`TASK_COMM_LEN` - 1).
const COMM_MAX: usize = 15;

/// One process as the module listed it.
struct Listed<'a> {
    pid: u32,
    ppid: Option<u32>,
    comm: Option<&'a str>,
}

impl Listed<'_> {
    fn describe(&self) -> String {
        match self.comm {
            Some(c) => format!("pid {} ({c})", self.pid),
            None => format!("pid {}", self.pid),
        }
    }
}

/// Whether a name the module printed is the name `/proc` showed for `task`. A kernel thread's
/// `comm` keeps the first 15 bytes of its name where `/proc` shows the whole name, and a
/// workqueue worker's `/proc` name adds `-` or `+` and what it works on (`kworker/0:1-events`).
fn comm_matches(listed: &str, task: &Task) -> bool {
    if listed == task.comm {
        return true;
    }
    match task.comm.strip_prefix(listed) {
        Some(rest) if task.kthread && !listed.is_empty() => {
            listed.len() == COMM_MAX || rest.starts_with('-') || rest.starts_with('+')
        }
        _ => false,
    }
}

/// `a, b, c, d, e and 3 more`, or `a and b`, or `a`.
fn listing(items: &[String]) -> String {
    let shown = &items[..items.len().min(NAMED)];
    let more = items.len() - shown.len();
    match (shown, more) {
        ([one], 0) => one.clone(),
        (_, 0) => format!(
            "{} and {}",
            shown[..shown.len() - 1].join(", "),
            shown[shown.len() - 1]
        ),
        _ => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Checks `phase`'s process list, the lines of its log that `re` matches, against the guest's
/// processes around the call: every process alive in both snapshots, and the caller, must be
/// listed; every process listed must be in one of them, with the name and parent it had there.
/// Returns one line per problem.
pub(crate) fn check_processes(phase: &str, re: &Regex, seen: Option<&PhaseResult>) -> Vec<String> {
    let what = format!("{phase} processes");
    let Some(seen) = seen else {
        return vec![format!(
            "{what}: expected a process list, but {phase} was not attempted"
        )];
    };
    let mut out = Vec::new();
    let mut listed = Vec::new();
    for line in &seen.log {
        let Some(c) = re.captures(line) else { continue };
        let number = |group: &str| -> Result<Option<u32>, String> {
            match c.name(group) {
                None => Ok(None),
                Some(m) => m.as_str().trim().parse().map(Some).map_err(|_| {
                    format!(
                        "{what}: line {line:?}: {group} {:?} is not a number",
                        m.as_str()
                    )
                }),
            }
        };
        match (number("pid"), number("ppid")) {
            (Ok(Some(pid)), Ok(ppid)) => listed.push(Listed {
                pid,
                ppid,
                comm: c.name("comm").map(|m| m.as_str()),
            }),
            (Err(e), _) | (_, Err(e)) => out.push(e),
            (Ok(None), _) => out.push(format!(
                "{what}: line {line:?} matches /{}/ without a pid",
                re.as_str()
            )),
        }
    }
    if listed.is_empty() && out.is_empty() {
        return vec![format!(
            "{what}: no line matches /{}/ ({} seen)",
            re.as_str(),
            plural(seen.log.len(), "line", "lines")
        )];
    }
    let Some(tasks) = &seen.tasks else {
        out.push(format!(
            "{what}: the guest's processes were not recorded (the {phase} did not reach its syscall)"
        ));
        return out;
    };
    out.extend(compare_processes(&what, &listed, tasks));
    out
}

fn compare_processes(what: &str, listed: &[Listed<'_>], tasks: &Tasks) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_pid: BTreeMap<u32, Vec<&Task>> = BTreeMap::new();
    for t in tasks.before.iter().chain(&tasks.after) {
        by_pid.entry(t.pid).or_default().push(t);
    }
    let mut times: BTreeMap<u32, usize> = BTreeMap::new();
    let mut strangers = Vec::new();
    for l in listed {
        *times.entry(l.pid).or_default() += 1;
        let Some(known) = by_pid.get(&l.pid) else {
            strangers.push(l.describe());
            continue;
        };
        let named: Vec<&&Task> = match l.comm {
            None => known.iter().collect(),
            Some(comm) => known.iter().filter(|t| comm_matches(comm, t)).collect(),
        };
        if named.is_empty() {
            let names: Vec<String> = dedup(known.iter().map(|t| format!("{:?}", t.comm)));
            out.push(format!(
                "{what}: pid {} is listed as {:?}, but the guest calls it {}",
                l.pid,
                l.comm.unwrap_or_default(),
                names.join(" or ")
            ));
            continue;
        }
        if let Some(ppid) = l.ppid {
            if !named.iter().any(|t| t.ppid == ppid) {
                let parents: Vec<String> = dedup(named.iter().map(|t| t.ppid.to_string()));
                out.push(format!(
                    "{what}: {} is listed with parent {ppid}, but its parent is {}",
                    l.describe(),
                    parents.join(" or ")
                ));
            }
        }
    }
    if !strangers.is_empty() {
        let verb = if strangers.len() == 1 {
            "is not a guest process"
        } else {
            "are not guest processes"
        };
        out.push(format!("{what}: {} {verb}", listing(&strangers)));
    }
    for (pid, n) in &times {
        if *n > 1 {
            let name = by_pid
                .get(pid)
                .map(|t| format!(" ({})", t[0].comm))
                .unwrap_or_default();
            out.push(format!("{what}: pid {pid}{name} is listed {n} times"));
        }
    }
    // Alive all along: in both snapshots as the same process (PID and start time), or the
    // caller, which runs the module's code.
    let mut missing = Vec::new();
    for t in &tasks.before {
        let alive = t.pid == tasks.caller
            || tasks
                .after
                .iter()
                .any(|a| a.pid == t.pid && a.start_time == t.start_time);
        if alive && !times.contains_key(&t.pid) {
            missing.push(format!("pid {} ({})", t.pid, t.comm));
        }
    }
    if !missing.is_empty() {
        out.push(format!("{what}: missing {}", listing(&missing)));
    }
    out
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
    v
}

/// A memory area as `/proc/PID/maps` lists it: start, end, and its name (a file, `[stack]`, or
/// empty).
#[derive(Debug, PartialEq, Eq)]
struct Area {
    start: u64,
    end: u64,
    name: String,
}

impl Area {
    fn range(&self) -> String {
        format!("{:x}-{:x}", self.start, self.end)
    }
}

/// The areas of a `/proc/PID/maps` text, in its order, without the gate area: `[vsyscall]` is
/// listed by `/proc` but is no area of the process's `mm`, so no VMA walk meets it.
fn parse_maps(text: &str) -> Vec<Area> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (start, end) = words.next()?.split_once('-')?;
            let name = words.nth(4).unwrap_or_default().to_string();
            Some(Area {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                name,
            })
        })
        .filter(|a| a.name != "[vsyscall]")
        .collect()
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Checks `phase`'s list of memory areas, the lines of its log that `re` matches, against the
/// caller's `/proc/self/maps` read right before the syscall: the same areas, in the same order.
/// Returns one line per problem.
pub(crate) fn check_vmas(phase: &str, re: &Regex, seen: Option<&PhaseResult>) -> Vec<String> {
    let what = format!("{phase} vmas");
    let caller = if phase == "unload" {
        "unloader"
    } else {
        "loader"
    };
    let Some(seen) = seen else {
        return vec![format!(
            "{what}: expected a list of memory areas, but {phase} was not attempted"
        )];
    };
    let mut out = Vec::new();
    let mut listed: Vec<(u64, u64)> = Vec::new();
    for line in &seen.log {
        let Some(c) = re.captures(line) else { continue };
        let (Some(start), Some(end)) = (c.name("start"), c.name("end")) else {
            out.push(format!(
                "{what}: line {line:?} matches /{}/ without a start and an end",
                re.as_str()
            ));
            continue;
        };
        match (hex(start.as_str()), hex(end.as_str())) {
            (Some(s), Some(e)) => listed.push((s, e)),
            _ => out.push(format!(
                "{what}: line {line:?}: {:?}-{:?} is not a range of hex addresses",
                start.as_str(),
                end.as_str()
            )),
        }
    }
    if listed.is_empty() && out.is_empty() {
        return vec![format!(
            "{what}: no line matches /{}/ ({} seen)",
            re.as_str(),
            plural(seen.log.len(), "line", "lines")
        )];
    }
    let Some(maps) = &seen.maps else {
        out.push(format!(
            "{what}: the {caller}'s /proc/self/maps was not recorded (the {phase} did not reach its syscall)"
        ));
        return out;
    };
    out.extend(compare_vmas(&what, caller, &listed, &parse_maps(maps)));
    out
}

fn compare_vmas(what: &str, caller: &str, listed: &[(u64, u64)], areas: &[Area]) -> Vec<String> {
    let mut out = Vec::new();
    let range = |(s, e): (u64, u64)| format!("{s:x}-{e:x}");
    let strangers: Vec<String> = listed
        .iter()
        .filter(|l| !areas.iter().any(|a| (a.start, a.end) == **l))
        .map(|l| range(*l))
        .collect();
    if !strangers.is_empty() {
        let verb = if strangers.len() == 1 {
            "is not an area"
        } else {
            "are not areas"
        };
        out.push(format!(
            "{what}: {} {verb} of the {caller}'s memory",
            listing(&strangers)
        ));
    }
    let missing: Vec<String> = areas
        .iter()
        .filter(|a| !listed.contains(&(a.start, a.end)))
        .map(|a| match a.name.as_str() {
            "" => a.range(),
            name => format!("{} ({name})", a.range()),
        })
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "{what}: missing {} (of the {caller}'s {})",
            listing(&missing),
            plural(areas.len(), "area", "areas")
        ));
    }
    let mut seen: Vec<(u64, u64)> = Vec::new();
    for l in listed {
        if seen.contains(l) {
            continue;
        }
        seen.push(*l);
        let n = listed.iter().filter(|x| *x == l).count();
        if n > 1 {
            out.push(format!("{what}: {} is listed {n} times", range(*l)));
        }
    }
    if out.is_empty() {
        let expected: Vec<(u64, u64)> = areas.iter().map(|a| (a.start, a.end)).collect();
        if let Some(i) = (0..listed.len()).find(|&i| listed[i] != expected[i]) {
            out.push(format!(
                "{what}: the areas are not in the {caller}'s order (in address order): \
                 number {} is {}, expected {}",
                i + 1,
                range(listed[i]),
                range(expected[i])
            ));
        }
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: u32, ppid: u32, comm: &str, kthread: bool, start_time: u64) -> Task {
        Task {
            pid,
            ppid,
            comm: comm.into(),
            kthread,
            start_time,
        }
    }

    /// The guest around a load by pid 90 (`insmod`): kthreadd, a worker that ended during the
    /// call and one that started during it, a process that ran exec, and a PID that went from
    /// one process to another.
    fn guest() -> Tasks {
        let common = vec![
            task(1, 0, "init", false, 65),
            task(2, 0, "kthreadd", true, 66),
            task(10, 2, "kworker/0:1-events", true, 78),
            task(13, 2, "kworker/R-mm_percpu_wq", true, 78),
            task(19, 2, "rcu_exp_par_gp_kthread_worker/0", true, 79),
        ];
        let mut before = common.clone();
        before.push(task(40, 2, "kworker/u4:3-events_unbound", true, 100));
        before.push(task(50, 1, "sh", false, 200));
        before.push(task(60, 1, "sleep", false, 210));
        before.push(task(90, 1, "insmod", false, 300));
        let mut after = common;
        after.push(task(41, 2, "kworker/u4:4", true, 301));
        // sh ran exec: a new name, the same process.
        after.push(task(50, 1, "cat", false, 200));
        // sleep ended and its PID went to a new process.
        after.push(task(60, 1, "true", false, 303));
        Tasks {
            caller: 90,
            before,
            after,
        }
    }

    fn phase(log: &[&str], tasks: Option<Tasks>, maps: Option<&str>) -> PhaseResult {
        PhaseResult {
            ok: true,
            log: log.iter().map(|l| l.to_string()).collect(),
            tasks,
            maps: maps.map(String::from),
            ..Default::default()
        }
    }

    fn ps() -> Regex {
        Regex::new(r"^ps: +(?P<pid>[0-9]+) +(?P<ppid>[0-9]+) (?P<comm>.*)$").unwrap()
    }

    /// The module's lines for the given (pid, ppid, comm).
    fn lines(list: &[(u32, u32, &str)]) -> Vec<String> {
        list.iter()
            .map(|(p, pp, c)| format!("ps: {p:5} {pp:5} {c}"))
            .collect()
    }

    fn check(list: &[(u32, u32, &str)]) -> Vec<String> {
        let l = lines(list);
        let log: Vec<&str> = l.iter().map(String::as_str).collect();
        check_processes("load", &ps(), Some(&phase(&log, Some(guest()), None)))
    }

    const RIGHT: [(u32, u32, &str); 7] = [
        (1, 0, "init"),
        (2, 0, "kthreadd"),
        (10, 2, "kworker/0:1"),
        (13, 2, "kworker/R-mm_pe"),
        (19, 2, "rcu_exp_par_gp_"),
        (50, 1, "sh"),
        (90, 1, "insmod"),
    ];

    #[test]
    fn a_list_of_the_guests_processes_passes() {
        assert_eq!(check(&RIGHT), Vec::<String>::new());
        // Those that came and went during the call may be there or not.
        let mut more = RIGHT.to_vec();
        more.push((40, 2, "kworker/u4:3"));
        more.push((41, 2, "kworker/u4:4"));
        more.push((60, 1, "true"));
        assert_eq!(check(&more), Vec::<String>::new());
        // A process that exec'd during the call: either name.
        let mut renamed = RIGHT.to_vec();
        renamed[5] = (50, 1, "cat");
        assert_eq!(check(&renamed), Vec::<String>::new());
    }

    #[test]
    fn a_missing_process_is_named() {
        let without: Vec<_> = RIGHT.iter().filter(|p| p.0 != 2).copied().collect();
        assert_eq!(
            check(&without),
            ["load processes: missing pid 2 (kthreadd)"]
        );
        // The caller must be there too, though it is gone after the call.
        let without: Vec<_> = RIGHT.iter().filter(|p| p.0 != 90).copied().collect();
        assert_eq!(check(&without), ["load processes: missing pid 90 (insmod)"]);
        let only_init = [(1, 0, "init")];
        assert_eq!(
            check(&only_init),
            [
                "load processes: missing pid 2 (kthreadd), pid 10 (kworker/0:1-events), \
              pid 13 (kworker/R-mm_percpu_wq), pid 19 (rcu_exp_par_gp_kthread_worker/0), \
              pid 50 (sh) and 1 more"
            ]
        );
    }

    #[test]
    fn a_made_up_process_is_named() {
        let mut more = RIGHT.to_vec();
        more.push((999, 1, "foo"));
        assert_eq!(
            check(&more),
            ["load processes: pid 999 (foo) is not a guest process"]
        );
        more.push((998, 1, "bar"));
        assert_eq!(
            check(&more),
            ["load processes: pid 999 (foo) and pid 998 (bar) are not guest processes"]
        );
    }

    #[test]
    fn a_wrong_name_or_parent_is_named() {
        let mut wrong = RIGHT.to_vec();
        wrong[1] = (2, 0, "kthread");
        wrong[4] = (19, 2, "rcu_exp_par_gp");
        wrong[5] = (50, 2, "sh");
        assert_eq!(
            check(&wrong),
            [
                "load processes: pid 2 is listed as \"kthread\", but the guest calls it \"kthreadd\"",
                "load processes: pid 19 is listed as \"rcu_exp_par_gp\", but the guest calls it \
                 \"rcu_exp_par_gp_kthread_worker/0\"",
                "load processes: pid 50 (sh) is listed with parent 2, but its parent is 1",
            ]
        );
        // A user process's name is never shortened.
        let mut short = RIGHT.to_vec();
        short[0] = (1, 0, "ini");
        assert_eq!(
            check(&short),
            ["load processes: pid 1 is listed as \"ini\", but the guest calls it \"init\""]
        );
    }

    #[test]
    fn a_process_listed_twice_is_named() {
        let mut twice = RIGHT.to_vec();
        twice.push((1, 0, "init"));
        assert_eq!(
            check(&twice),
            ["load processes: pid 1 (init) is listed 2 times"]
        );
    }

    #[test]
    fn a_pid_and_no_other_group_is_enough() {
        let re = Regex::new(r"^pid = (?P<pid>[0-9]+)$").unwrap();
        let mut log: Vec<String> = RIGHT.iter().map(|p| format!("pid = {}", p.0)).collect();
        let seen = |log: &[String]| {
            let log: Vec<&str> = log.iter().map(String::as_str).collect();
            check_processes("unload", &re, Some(&phase(&log, Some(guest()), None)))
        };
        assert_eq!(seen(&log), Vec::<String>::new());
        log.push("pid = 7".into());
        assert_eq!(
            seen(&log),
            ["unload processes: pid 7 is not a guest process"]
        );
    }

    #[test]
    fn no_list_or_no_record_fails() {
        let seen = phase(&["Hello"], Some(guest()), None);
        assert_eq!(
            check_processes("load", &ps(), Some(&seen)),
            [format!(
                "load processes: no line matches /{}/ (1 line seen)",
                ps().as_str()
            )]
        );
        let l = lines(&RIGHT);
        let log: Vec<&str> = l.iter().map(String::as_str).collect();
        assert_eq!(
            check_processes("load", &ps(), Some(&phase(&log, None, None))),
            [
                "load processes: the guest's processes were not recorded (the load did not reach \
              its syscall)"
            ]
        );
        assert_eq!(
            check_processes("unload", &ps(), None),
            ["unload processes: expected a process list, but unload was not attempted"]
        );
    }

    const MAPS: &str = "\
00400000-00401000 r--p 00000000 00:02 10                         /init
7fbbb33cc000-7fbbb33cd000 ---p 00000000 00:00 0 
7fbbb3fe7000-7fbbb3feb000 r--p 00000000 00:00 0                          [vvar]
7ffe7d497000-7ffe7d4b8000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    fn vmas(listed: &[&str]) -> Vec<String> {
        let re = Regex::new(r"^mi: (?P<start>(0x)?[0-9a-f]+)-(?P<end>(0x)?[0-9a-f]+)$").unwrap();
        let log: Vec<String> = listed.iter().map(|l| format!("mi: {l}")).collect();
        let log: Vec<&str> = log.iter().map(String::as_str).collect();
        check_vmas("load", &re, Some(&phase(&log, None, Some(MAPS))))
    }

    const AREAS: [&str; 4] = [
        "400000-401000",
        "7fbbb33cc000-7fbbb33cd000",
        "7fbbb3fe7000-7fbbb3feb000",
        "7ffe7d497000-7ffe7d4b8000",
    ];

    #[test]
    fn the_loaders_areas_in_order_pass() {
        // The gate area is in /proc's list only.
        assert_eq!(vmas(&AREAS), Vec::<String>::new());
        // Zero-padded as /proc pads them, or with 0x: the same numbers.
        let padded = ["00400000-00401000", "0x7fbbb33cc000-0x7fbbb33cd000"];
        let mut all = padded.to_vec();
        all.extend_from_slice(&AREAS[2..]);
        assert_eq!(vmas(&all), Vec::<String>::new());
    }

    #[test]
    fn a_missing_extra_repeated_or_misplaced_area_is_named() {
        assert_eq!(
            vmas(&AREAS[..3]),
            ["load vmas: missing 7ffe7d497000-7ffe7d4b8000 ([stack]) (of the loader's 4 areas)"]
        );
        let mut extra = AREAS.to_vec();
        extra.push("1000-2000");
        assert_eq!(
            vmas(&extra),
            ["load vmas: 1000-2000 is not an area of the loader's memory"]
        );
        let mut off = AREAS.to_vec();
        off[1] = "7fbbb33cc000-7fbbb33ce000";
        assert_eq!(
            vmas(&off),
            [
                "load vmas: 7fbbb33cc000-7fbbb33ce000 is not an area of the loader's memory",
                "load vmas: missing 7fbbb33cc000-7fbbb33cd000 (of the loader's 4 areas)"
            ]
        );
        let mut twice = AREAS.to_vec();
        twice.push(AREAS[0]);
        assert_eq!(vmas(&twice), ["load vmas: 400000-401000 is listed 2 times"]);
        let mut swapped = AREAS.to_vec();
        swapped.swap(0, 1);
        assert_eq!(
            vmas(&swapped),
            [
                "load vmas: the areas are not in the loader's order (in address order): number 1 \
              is 7fbbb33cc000-7fbbb33cd000, expected 400000-401000"
            ]
        );
    }

    #[test]
    fn no_areas_or_no_maps_fail() {
        assert_eq!(
            vmas(&[]),
            ["load vmas: no line matches /^mi: (?P<start>(0x)?[0-9a-f]+)-(?P<end>(0x)?[0-9a-f]+)$/ \
              (0 lines seen)"]
        );
        let re = Regex::new(r"^(?P<start>[0-9a-z]+)-(?P<end>[0-9a-z]+)$").unwrap();
        let seen = phase(&["400000-40zz00"], None, None);
        assert_eq!(
            check_vmas("unload", &re, Some(&seen)),
            [
                "unload vmas: line \"400000-40zz00\": \"400000\"-\"40zz00\" is not a range of hex \
                 addresses",
                "unload vmas: the unloader's /proc/self/maps was not recorded (the unload did not \
                 reach its syscall)"
            ]
        );
    }
}
