//! Grades: an exercise's spec outcomes turned into passed or failed TODOs, per student, and the
//! class table.
//!
//! A case of an exercise's spec checks the TODOs its `todo` list names; a case without one
//! checks every TODO of the exercise. A TODO passes when every case that checks it passes; a
//! TODO no case checks is not graded. An exercise whose cases name no TODO at all is one item,
//! numbered 0 and called by its title. A student's score is the number of passed items out of
//! all graded ones.

use crate::Exercise;
use kmodlab_report::CaseOutcome;
use serde::Serialize;
use std::fmt;

/// How many of the kernel's lines a failed check shows.
const SHOWN_KERNEL_LINES: usize = 8;

/// One case's result as a student sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckGrade {
    /// The case's name.
    pub case: String,
    /// Whether the case passed.
    pub passed: bool,
    /// The run's verdict (`pass`, `crashed`, ...), when there was a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// What was expected and not seen (the spec's failures, or why the case could not run).
    pub problems: Vec<String>,
    /// The spec's hint for the case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The first kernel messages of the run's load and unload phases.
    pub kernel_printed: Vec<String>,
    /// The run directory, when there was a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
}

/// One TODO's grade.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TodoGrade {
    /// The TODO's number (0: the whole exercise).
    pub number: u32,
    /// Its instruction (the exercise's title for number 0).
    pub text: String,
    /// Whether every check of it passed.
    pub passed: bool,
    /// The cases that check it.
    pub checks: Vec<CheckGrade>,
}

/// One exercise's grade.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExerciseGrade {
    /// The exercise's directory name.
    pub exercise: String,
    /// Its title.
    pub title: String,
    /// Passed items.
    pub passed: usize,
    /// Graded items.
    pub total: usize,
    /// The graded items.
    pub todos: Vec<TodoGrade>,
    /// Some case could not run for a reason that is not the student's (no QEMU, no kernel).
    pub infra_error: bool,
}

/// One student's grades.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StudentGrade {
    /// The student's directory, as given.
    pub student: String,
    /// The lab.
    pub lab: String,
    /// Passed items over all exercises.
    pub passed: usize,
    /// Graded items over all exercises.
    pub total: usize,
    /// Per exercise.
    pub exercises: Vec<ExerciseGrade>,
}

impl StudentGrade {
    /// Sums the exercises' grades.
    pub fn new(student: &str, lab: &str, exercises: Vec<ExerciseGrade>) -> StudentGrade {
        StudentGrade {
            student: student.to_string(),
            lab: lab.to_string(),
            passed: exercises.iter().map(|e| e.passed).sum(),
            total: exercises.iter().map(|e| e.total).sum(),
            exercises,
        }
    }

    /// Whether some case could not run for a reason that is not the student's.
    pub fn infra_error(&self) -> bool {
        self.exercises.iter().any(|e| e.infra_error)
    }
}

fn check(case: &kmodlab_spec::Case, outcome: Option<&CaseOutcome>) -> CheckGrade {
    let Some(o) = outcome else {
        return CheckGrade {
            case: case.name.clone(),
            passed: false,
            verdict: None,
            problems: vec!["not run".to_string()],
            hint: case.hint.clone(),
            kernel_printed: Vec::new(),
            run_dir: None,
        };
    };
    let kernel_printed = o
        .result
        .as_ref()
        .map(|r| {
            r.load
                .log
                .iter()
                .chain(r.unload.iter().flat_map(|u| u.log.iter()))
                .take(SHOWN_KERNEL_LINES)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    CheckGrade {
        case: case.name.clone(),
        passed: o.passed(),
        verdict: o.result.as_ref().map(|r| r.verdict.as_str().to_string()),
        problems: o.failures.clone(),
        hint: case.hint.clone(),
        kernel_printed,
        run_dir: o.result.as_ref().map(|r| r.run_dir.display().to_string()),
    }
}

/// Grades one exercise from the outcomes of its spec's cases (matched by case name; a case
/// without an outcome failed as "not run").
pub fn grade(ex: &Exercise, outcomes: &[CaseOutcome]) -> ExerciseGrade {
    let checks: Vec<(&kmodlab_spec::Case, CheckGrade)> = ex
        .spec
        .cases
        .iter()
        .map(|c| (c, check(c, outcomes.iter().find(|o| o.case == c.name))))
        .collect();
    let item = |number: u32, text: &str, of: &dyn Fn(&kmodlab_spec::Case) -> bool| {
        let mine: Vec<CheckGrade> = checks
            .iter()
            .filter(|(c, _)| of(c))
            .map(|(_, g)| g.clone())
            .collect();
        (!mine.is_empty()).then(|| TodoGrade {
            number,
            text: text.to_string(),
            passed: mine.iter().all(|g| g.passed),
            checks: mine,
        })
    };
    let todos: Vec<TodoGrade> = if ex.spec.cases.iter().all(|c| c.todo.is_empty()) {
        item(0, &ex.title, &|_| true).into_iter().collect()
    } else {
        ex.todos
            .iter()
            .filter_map(|t| {
                item(t.number, &t.text, &|c| {
                    c.todo.is_empty() || c.todo.contains(&t.number)
                })
            })
            .collect()
    };
    ExerciseGrade {
        exercise: ex.name.clone(),
        title: ex.title.clone(),
        passed: todos.iter().filter(|t| t.passed).count(),
        total: todos.len(),
        todos,
        infra_error: outcomes.iter().any(|o| o.infra_error),
    }
}

/// The class table as CSV: one row per student, one column per exercise (`passed/total`), then
/// the student's passed and total. Fields with a comma, quote or line break are quoted.
pub fn csv(students: &[StudentGrade]) -> String {
    let mut exercises: Vec<&str> = Vec::new();
    for s in students {
        for e in &s.exercises {
            if !exercises.contains(&e.exercise.as_str()) {
                exercises.push(&e.exercise);
            }
        }
    }
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("student");
    for e in &exercises {
        out.push(',');
        out.push_str(&field(e));
    }
    out.push_str(",passed,total\n");
    for s in students {
        out.push_str(&field(&s.student));
        for e in &exercises {
            out.push(',');
            if let Some(g) = s.exercises.iter().find(|g| g.exercise == *e) {
                out.push_str(&format!("{}/{}", g.passed, g.total));
            }
        }
        out.push_str(&format!(",{},{}\n", s.passed, s.total));
    }
    out
}

/// The per-TODO results as test outcomes, for the KTAP and JUnit writers: the spec label is
/// `STUDENT/EXERCISE`, the case `TODO n: text`, the failures each failed check's problems.
pub fn as_outcomes(s: &StudentGrade) -> Vec<CaseOutcome> {
    let mut out = Vec::new();
    for e in &s.exercises {
        for t in &e.todos {
            let mut failures = Vec::new();
            for c in t.checks.iter().filter(|c| !c.passed) {
                for p in &c.problems {
                    failures.push(format!("{}: {p}", c.case));
                }
                if let Some(h) = &c.hint {
                    failures.push(format!("{}: hint: {h}", c.case));
                }
            }
            if !t.passed && failures.is_empty() {
                failures.push("failed".to_string());
            }
            out.push(CaseOutcome {
                spec: format!("{}/{}", s.student.trim_end_matches('/'), e.exercise),
                case: if t.number == 0 {
                    t.text.clone()
                } else {
                    format!("TODO {}: {}", t.number, t.text)
                },
                result: None,
                failures,
                infra_error: e.infra_error && !t.passed,
                input_error: false,
                duration_s: 0.0,
                console_tail: Vec::new(),
            });
        }
    }
    out
}

/// `--partition K/N`: the K-th of N shares of a sorted list, taken round-robin (items 0, N,
/// 2N, ... go to share 1), as cargo-nextest's counted partitions do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The share, 1-based.
    pub k: usize,
    /// The number of shares.
    pub n: usize,
}

impl Partition {
    /// The items of this share, in their order.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, t)| t)
            .collect()
    }
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Partition, String> {
        let bad =
            || format!("partition {s:?} is not K/N with 1 <= K <= N (2/3: the second of three)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.parse::<usize>().map_err(|_| bad())?,
            n.parse::<usize>().map_err(|_| bad())?,
        );
        if k == 0 || k > n {
            return Err(bad());
        }
        Ok(Partition { k, n })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_files;
    use kmodlab_events::{PhaseResult, RunResult, Verdict};

    fn exercise(spec: &'static str) -> Exercise {
        let files: Vec<(&str, &[u8])> = vec![
            (
                "l/1-x/x.c",
                b"/* TODO 1/1: a */\na;\n/* TODO 2/1: b */\nb;\n/* TODO 3: c */\n",
            ),
            ("l/1-x/Kbuild", b"obj-m = x.o\n"),
            ("l/1-x/kmodlab.toml", spec.as_bytes()),
        ];
        from_files(&files).unwrap().remove(0).exercises.remove(0)
    }

    fn outcome(case: &str, failures: &[&str]) -> CaseOutcome {
        CaseOutcome {
            spec: "s/1-x".into(),
            case: case.into(),
            result: Some(RunResult {
                verdict: Verdict::Pass,
                module: "x".into(),
                params: vec![],
                load: PhaseResult {
                    ok: true,
                    error: None,
                    errno: None,
                    log: vec!["hello".into()],
                    ..Default::default()
                },
                unload: None,
                files: vec![],
                reports: vec![],
                timeout_phase: None,
                kernel: "7.3".into(),
                accel: "tcg".into(),
                run_dir: "/runs/1".into(),
                duration_s: 1.0,
                start: "warm".into(),
                before: vec![],
                commands: vec![],
            }),
            failures: failures.iter().map(|s| s.to_string()).collect(),
            infra_error: false,
            input_error: false,
            duration_s: 1.0,
            console_tail: vec![],
        }
    }

    const TWO: &str = "[[case]]\nname = \"one\"\ntodo = [1]\nhint = \"do a\"\n\
                       [[case]]\nname = \"both\"\ntodo = [1, 2]\n";

    #[test]
    fn a_todo_passes_when_every_case_that_checks_it_passes() {
        let ex = exercise(TWO);
        let g = grade(
            &ex,
            &[outcome("one", &[]), outcome("both", &["load log: no /b/"])],
        );
        assert_eq!(
            (g.passed, g.total),
            (0, 2),
            "TODO 3 has no check: not graded"
        );
        assert_eq!(g.todos[0].number, 1);
        assert!(!g.todos[0].passed);
        assert_eq!(g.todos[0].checks.len(), 2);
        let failed = &g.todos[1].checks[0];
        assert_eq!(failed.problems, vec!["load log: no /b/".to_string()]);
        assert_eq!(failed.kernel_printed, vec!["hello".to_string()]);
        let g = grade(&ex, &[outcome("one", &[]), outcome("both", &[])]);
        assert_eq!((g.passed, g.total), (2, 2));
        let g = grade(&ex, &[outcome("both", &[])]);
        assert_eq!((g.passed, g.total), (1, 2), "a case never run fails");
        assert_eq!(g.todos[0].checks[0].problems, vec!["not run".to_string()]);
        assert_eq!(g.todos[0].checks[0].hint.as_deref(), Some("do a"));
    }

    #[test]
    fn cases_without_todos_check_every_todo_or_the_whole_exercise() {
        let ex = exercise("[[case]]\nname = \"all\"\n");
        let g = grade(&ex, &[outcome("all", &[])]);
        assert_eq!((g.passed, g.total, g.todos[0].number), (1, 1, 0));
        let ex = exercise("[[case]]\nname = \"a\"\ntodo = [1]\n[[case]]\nname = \"all\"\n");
        let g = grade(&ex, &[outcome("a", &[]), outcome("all", &["x"])]);
        assert_eq!(
            (g.passed, g.total),
            (0, 3),
            "the common case checks TODOs 1, 2 and 3"
        );
    }

    #[test]
    fn the_table_and_the_outcomes_carry_every_student() {
        let ex = exercise(TWO);
        let a = StudentGrade::new(
            "class/ana",
            "l",
            vec![grade(&ex, &[outcome("one", &[]), outcome("both", &[])])],
        );
        let b = StudentGrade::new("class/bo, jr", "l", vec![grade(&ex, &[])]);
        assert_eq!(
            csv(&[a.clone(), b.clone()]),
            "student,1-x,passed,total\nclass/ana,2/2,2,2\n\"class/bo, jr\",0/2,0,2\n"
        );
        let o = as_outcomes(&b);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].spec, "class/bo, jr/1-x");
        assert_eq!(o[0].case, "TODO 1: a");
        assert!(o[0].failures.iter().any(|f| f == "one: hint: do a"));
        assert!(as_outcomes(&a).iter().all(|o| o.passed()));
    }

    #[test]
    fn partitions_split_round_robin_and_cover_everything_once() {
        let p: Partition = "2/3".parse().unwrap();
        assert_eq!(p.select((0..8).collect()), vec![1, 4, 7]);
        let mut all: Vec<i32> = (1..=3)
            .flat_map(|k| Partition { k, n: 3 }.select((0..8).collect::<Vec<i32>>()))
            .collect();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        for bad in ["0/3", "4/3", "1", "a/b", "1/0"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }
}
