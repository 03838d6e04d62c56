//! `kmodlab lab`: the built-in labs: list them, start a student's directory from the skeletons,
//! check and grade students' work.

use crate::{exit, fail, print, written, Format, KernelChoice};
use kmodlab_course::{grade, Exercise, Lab, Partition, StudentGrade, LAB_FILE};
use kmodlab_lab::{LabError, SpecDir};
use kmodlab_report::{CaseOutcome, TerminalSafe};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `kmodlab lab list [LAB]`: the labs, or one lab's exercises with their TODOs.
pub fn lab_list(lab: Option<String>, json: bool) -> u8 {
    let labs = kmodlab_course::labs();
    let shown: Vec<&Lab> = match &lab {
        None => labs.iter().collect(),
        Some(name) => match labs.iter().find(|l| &l.name == name) {
            Some(l) => vec![l],
            None => return unknown_lab(name, &labs),
        },
    };
    let value: Vec<serde_json::Value> = shown
        .iter()
        .map(|l| {
            serde_json::json!({
                "lab": l.name,
                "exercises": l.exercises.iter().map(|e| serde_json::json!({
                    "exercise": e.name,
                    "title": e.title,
                    "kernel": e.spec.kernel.as_str(),
                    "checks": e.spec.cases.len(),
                    "todos": e.todos.iter().map(|t| serde_json::json!({
                        "number": t.number, "text": t.text, "file": t.file, "line": t.line,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let human = |out: &mut dyn Write| -> std::io::Result<()> {
        for l in &shown {
            writeln!(
                out,
                "{} ({} exercises; kmodlab lab start {} DIR)",
                l.name,
                l.exercises.len(),
                l.name
            )?;
            for e in &l.exercises {
                writeln!(out, "  {:<16} {}", e.name, e.title)?;
                if lab.is_some() {
                    for t in &e.todos {
                        writeln!(
                            out,
                            "    TODO {}: {} ({}:{})",
                            t.number, t.text, t.file, t.line
                        )?;
                    }
                }
            }
        }
        Ok(())
    };
    print(json, &value, human, "the list", exit::OK)
}

fn unknown_lab(name: &str, labs: &[Lab]) -> u8 {
    let names: Vec<&str> = labs.iter().map(|l| l.name.as_str()).collect();
    fail(&LabError::Input(format!(
        "no lab called {name:?} (the labs: {})",
        names.join(", ")
    )))
}

/// `kmodlab lab start LAB [DIR] [--exercise E...]`: writes the skeletons, never overwriting.
pub fn lab_start(lab: String, dir: Option<PathBuf>, exercises: Vec<String>) -> u8 {
    let labs = kmodlab_course::labs();
    let Some(l) = labs.iter().find(|l| l.name == lab) else {
        return unknown_lab(&lab, &labs);
    };
    let chosen = match select(l, &exercises) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(&l.name));
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        vec![(dir.join(LAB_FILE), format!("{}\n", l.name).into_bytes())];
    if let Some(readme) = &l.readme {
        files.push((dir.join("README.md"), readme.clone().into_bytes()));
    }
    for e in &chosen {
        for f in e.skeleton() {
            files.push((dir.join(&e.name).join(&f.path), f.data));
        }
    }
    let mut made = 0;
    let mut kept = Vec::new();
    for (path, data) in files {
        if path.exists() || path.symlink_metadata().is_ok() {
            kept.push(path);
            continue;
        }
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
            })
            .and_then(|mut f| f.write_all(&data));
        match result {
            Ok(()) => made += 1,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => kept.push(path),
            Err(e) => return fail(&LabError::Input(format!("{}: {e}", path.display()))),
        }
    }
    for k in &kept {
        eprintln!("kmodlab: {}: exists, kept as it is", k.display());
    }
    eprintln!(
        "kmodlab: {} skeleton file{} written into {} ({} exercise{}); fill in the TODOs, then: \
         kmodlab lab check {}",
        made,
        if made == 1 { "" } else { "s" },
        dir.display(),
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        dir.display()
    );
    exit::OK
}

/// The exercises `selectors` name (all when empty); an error names one that matches none.
fn select<'a>(lab: &'a Lab, selectors: &[String]) -> Result<Vec<&'a Exercise>, LabError> {
    if selectors.is_empty() {
        return Ok(lab.exercises.iter().collect());
    }
    let mut out: Vec<&Exercise> = Vec::new();
    for s in selectors {
        match lab.exercise(s) {
            Some(e) if !out.iter().any(|o| o.name == e.name) => out.push(e),
            Some(_) => {}
            None => {
                return Err(LabError::Input(format!(
                    "lab {} has no exercise {s:?} (kmodlab lab list {} shows them)",
                    lab.name, lab.name
                )))
            }
        }
    }
    out.sort_by_key(|e| kmodlab_course::order_key(&e.name));
    Ok(out)
}

/// `kmodlab lab check`.
#[derive(Clone, Debug)]
pub struct LabCheckArgs {
    /// Output format.
    pub format: Format,
    /// VMs at a time.
    pub jobs: usize,
    /// The kernel.
    pub kernel: KernelChoice,
    /// Boot cold.
    pub cold: bool,
    /// The lab, when it cannot be told from the directories.
    pub lab: Option<String>,
    /// Write PREFIX.csv and PREFIX.json with the class table.
    pub table: Option<PathBuf>,
    /// Grade only this share of the students.
    pub partition: Option<Partition>,
    /// Show every check's verdict and kernel messages, passed ones too (human format).
    pub verbose: bool,
    /// Student directories and exercise names, mixed.
    pub args: Vec<String>,
}

/// The lab a student's directory holds: `--lab`, the file `lab start` left, the directory's
/// own name, or the lab most of whose exercises are subdirectories of it.
fn lab_of<'a>(dir: &Path, labs: &'a [Lab], given: Option<&str>) -> Result<&'a Lab, LabError> {
    let by_name = |name: &str| labs.iter().find(|l| l.name == name);
    if let Some(name) = given {
        return by_name(name).ok_or_else(|| {
            LabError::Input(format!(
                "no lab called {name:?} (the labs: {})",
                labs.iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(LAB_FILE)) {
        if let Some(l) = by_name(text.trim()) {
            return Ok(l);
        }
    }
    let own = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(l) = own.as_deref().and_then(by_name) {
        return Ok(l);
    }
    labs.iter()
        .map(|l| {
            let n = l
                .exercises
                .iter()
                .filter(|e| dir.join(&e.name).is_dir())
                .count();
            (n, l)
        })
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, l)| l)
        .ok_or_else(|| {
            LabError::Input(format!(
                "{}: no exercise of a built-in lab here (kmodlab lab start LAB {} makes one; \
                 --lab names the lab)",
                dir.display(),
                dir.display()
            ))
        })
}

/// Checks and grades each student's directory: every chosen exercise built and run against the
/// lab's own checks (not the copies in the directory), several VMs at a time.
pub fn lab_check(a: LabCheckArgs) -> u8 {
    let labs = kmodlab_course::labs();
    let mut students: Vec<PathBuf> = Vec::new();
    let mut selectors: Vec<String> = Vec::new();
    for arg in &a.args {
        let p = PathBuf::from(arg);
        if p.is_dir() {
            // An exercise directory names its student (the parent) and itself.
            let is_exercise = p.join(kmodlab_spec::SPEC_FILE).is_file()
                && p.file_name().is_some_and(|n| {
                    labs.iter()
                        .any(|l| l.exercise(&n.to_string_lossy()).is_some())
                });
            match (is_exercise, p.parent()) {
                (true, Some(parent)) => {
                    let parent = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                    selectors.push(p.file_name().unwrap_or_default().to_string_lossy().into());
                    if !students.contains(&parent) {
                        students.push(parent);
                    }
                }
                _ => {
                    if !students.contains(&p) {
                        students.push(p)
                    }
                }
            }
        } else if arg.contains('/') || p.exists() {
            return fail(&LabError::Input(format!("{arg}: no such directory")));
        } else {
            selectors.push(arg.clone());
        }
    }
    if students.is_empty() {
        students.push(PathBuf::from("."));
    }
    students.sort();
    if let Some(p) = a.partition {
        let all = students.len();
        students = p.select(students);
        eprintln!(
            "kmodlab: partition {p}: {} of {all} student director{}",
            students.len(),
            if all == 1 { "y" } else { "ies" }
        );
    }

    // What to run: each student's chosen exercises, with the lab's checks.
    struct Plan<'a> {
        student: PathBuf,
        lab: &'a Lab,
        exercises: Vec<&'a Exercise>,
    }
    let mut plans = Vec::new();
    for s in &students {
        let lab = match lab_of(s, &labs, a.lab.as_deref()) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        let exercises = match select(lab, &selectors) {
            Ok(e) => e,
            Err(e) => return fail(&e),
        };
        plans.push(Plan {
            student: s.clone(),
            lab,
            exercises,
        });
    }
    let label = |student: &Path, e: &Exercise| format!("{}/{}", student.display(), e.name);
    let mut specs = Vec::new();
    let mut missing: Vec<CaseOutcome> = Vec::new();
    for p in &plans {
        for e in &p.exercises {
            let dir = p.student.join(&e.name);
            if dir.is_dir() {
                let mut spec = e.spec.clone();
                spec.kernel = a.kernel.kind(spec.kernel);
                specs.push(SpecDir {
                    dir,
                    label: label(&p.student, e),
                    spec,
                });
            } else {
                missing.extend(e.spec.cases.iter().map(|c| CaseOutcome {
                    spec: label(&p.student, e),
                    case: c.name.clone(),
                    result: None,
                    failures: vec![format!("{}: no such directory", dir.display())],
                    infra_error: false,
                    input_error: false,
                    duration_s: 0.0,
                    console_tail: Vec::new(),
                }));
            }
        }
    }
    let mut outcomes = Vec::new();
    if !specs.is_empty() {
        let mut progress = kmodlab_kernel::StderrProgress::new();
        let mut vms = match kmodlab_lab::Labs::for_specs(
            &specs,
            a.kernel.kernel.clone(),
            a.kernel.kdir.clone(),
            &mut |e| progress.event(e),
        ) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        if a.cold {
            vms.boot_cold();
        }
        let cases: usize = specs.iter().map(|s| s.spec.cases.len()).sum();
        eprintln!(
            "kmodlab: checking {} student director{}: {} exercise{}, {cases} check{}, {} at a time",
            plans.len(),
            if plans.len() == 1 { "y" } else { "ies" },
            specs.len(),
            if specs.len() == 1 { "" } else { "s" },
            if cases == 1 { "" } else { "s" },
            a.jobs.max(1)
        );
        let on_done = |o: &CaseOutcome| crate::lab_commands::progress_line(o);
        let mut build_log = std::io::sink();
        outcomes = kmodlab_lab::run_specs(&vms, &specs, a.jobs.max(1), &mut build_log, &on_done);
    }
    outcomes.extend(missing);

    let grades: Vec<StudentGrade> = plans
        .iter()
        .map(|p| {
            let exercises = p
                .exercises
                .iter()
                .map(|e| {
                    let l = label(&p.student, e);
                    let mine: Vec<CaseOutcome> =
                        outcomes.iter().filter(|o| o.spec == l).cloned().collect();
                    grade(e, &mine)
                })
                .collect();
            StudentGrade::new(&p.student.display().to_string(), &p.lab.name, exercises)
        })
        .collect();

    if let Some(prefix) = &a.table {
        if let Err(e) = write_table(prefix, &grades) {
            return fail(&LabError::Input(e));
        }
    }
    let code = if grades.iter().any(StudentGrade::infra_error) {
        exit::INFRA
    } else if grades.iter().all(|g| g.passed == g.total) {
        exit::OK
    } else {
        exit::FAILED
    };
    let mut out = std::io::stdout().lock();
    let result = match a.format {
        Format::Human => write_human(&mut TerminalSafe::new(&mut out), &grades, a.verbose),
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "students": grades }))
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        }
        Format::Ktap => kmodlab_report::write_ktap(&mut out, &all_outcomes(&grades)),
        Format::Junit => kmodlab_report::write_junit(&mut out, &all_outcomes(&grades)),
    };
    written(result, "the grades", code)
}

fn all_outcomes(grades: &[StudentGrade]) -> Vec<CaseOutcome> {
    grades
        .iter()
        .flat_map(kmodlab_course::grade::as_outcomes)
        .collect()
}

fn write_table(prefix: &Path, grades: &[StudentGrade]) -> Result<(), String> {
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    if let Some(parent) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let csv = with(".csv");
    std::fs::write(&csv, kmodlab_course::grade::csv(grades))
        .map_err(|e| format!("{}: {e}", csv.display()))?;
    let json = with(".json");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "students": grades }))
        .map_err(|e| e.to_string())?;
    std::fs::write(&json, text + "\n").map_err(|e| format!("{}: {e}", json.display()))?;
    eprintln!(
        "kmodlab: scores written to {} and {}",
        csv.display(),
        json.display()
    );
    Ok(())
}

fn write_human(out: &mut dyn Write, grades: &[StudentGrade], verbose: bool) -> std::io::Result<()> {
    for g in grades {
        writeln!(out, "{} ({})", g.student, g.lab)?;
        for e in &g.exercises {
            writeln!(
                out,
                "  {:<16} {:<44} {}/{}",
                e.exercise, e.title, e.passed, e.total
            )?;
            for t in &e.todos {
                let what = if t.number == 0 {
                    "the exercise".to_string()
                } else {
                    format!("TODO {}: {}", t.number, t.text)
                };
                writeln!(
                    out,
                    "    {}  {what}",
                    if t.passed { "passed" } else { "failed" }
                )?;
                for c in t.checks.iter().filter(|c| verbose || !c.passed) {
                    // The check's result, then the run's verdict: a run may pass (no crash)
                    // while the check fails (the wrong lines).
                    writeln!(
                        out,
                        "            check {:?}: {} (verdict {})",
                        c.case,
                        if c.passed { "passed" } else { "failed" },
                        c.verdict.as_deref().unwrap_or("none: no run")
                    )?;
                    for p in &c.problems {
                        for (i, line) in p.lines().enumerate() {
                            let lead = if i == 0 { "- " } else { "  " };
                            writeln!(out, "              {lead}{line}")?;
                        }
                    }
                    if let (Some(h), false) = (&c.hint, c.passed) {
                        writeln!(out, "              hint: {h}")?;
                    }
                    if !c.kernel_printed.is_empty() {
                        writeln!(out, "              the kernel printed:")?;
                        for l in &c.kernel_printed {
                            writeln!(out, "                | {l}")?;
                        }
                    }
                    if let Some(d) = &c.run_dir {
                        writeln!(out, "              run: {d}")?;
                    }
                }
            }
        }
        writeln!(out, "  passed [{}/{}]", g.passed, g.total)?;
    }
    if grades.len() > 1 {
        writeln!(out)?;
        for g in grades {
            writeln!(out, "{:<40} passed [{}/{}]", g.student, g.passed, g.total)?;
        }
    }
    Ok(())
}
