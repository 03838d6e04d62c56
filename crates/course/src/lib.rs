//! The labs kmodlab ships, and what makes them a course: skeletons and grades.
//!
//! The repository's `labs/` directory is built into the binary ([`labs`]): each directory under
//! it is a lab (`kernel_modules`, `rust`), each directory under a lab with a `kmodlab.toml` an
//! exercise. The exercises are solutions whose sources carry TODO markers ([`markers`]);
//! [`Exercise::skeleton`] turns a solution into the student's starting point, and [`grade`]
//! turns the outcomes of an exercise's spec cases into passed or failed TODOs. Writing files,
//! building and booting happen elsewhere: this crate only reads its own data and computes.
#![deny(missing_docs)]

pub mod grade;
pub mod markers;

pub use grade::{grade, ExerciseGrade, Partition, StudentGrade, TodoGrade};

use kmodlab_spec::Spec;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/labs.rs"));
}

/// The file `kmodlab lab start` leaves in a student's directory, naming the lab.
pub const LAB_FILE: &str = ".kmodlab-lab";

/// A lab: its exercises, in directory order.
#[derive(Clone, Debug)]
pub struct Lab {
    /// Its directory name (`kernel_modules`).
    pub name: String,
    /// Its README, the lab's own text.
    pub readme: Option<String>,
    /// The exercises, in the lab's order ([`order_key`]).
    pub exercises: Vec<Exercise>,
}

/// One file of an exercise.
#[derive(Clone, Debug)]
pub struct LabFile {
    /// The path within the exercise directory.
    pub path: String,
    /// The solution's contents.
    pub data: Vec<u8>,
}

/// A TODO of an exercise: where its marker is and what it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Todo {
    /// Its number within the exercise.
    pub number: u32,
    /// The instruction (the first marker's, when several share the number).
    pub text: String,
    /// The file of its first marker.
    pub file: String,
    /// The 1-based line of its first marker.
    pub line: usize,
}

/// An exercise: a solution directory with a spec and TODO markers.
#[derive(Clone, Debug)]
pub struct Exercise {
    /// The directory name (`6-cmd-mod`).
    pub name: String,
    /// What the exercise is about (the spec's `title`, else the directory name).
    pub title: String,
    /// The files, sorted by path.
    pub files: Vec<LabFile>,
    /// The TODOs, by number.
    pub todos: Vec<Todo>,
    /// The spec: the checks that grade it.
    pub spec: Spec,
}

impl Exercise {
    /// Whether `selector` names this exercise: its directory name, or the number it starts with
    /// (`6` or `1-2` for `1-2-test-mod`).
    pub fn is_named(&self, selector: &str) -> bool {
        self.name == selector
            || self
                .name
                .strip_prefix(selector)
                .is_some_and(|rest| rest.starts_with('-'))
                && selector.starts_with(|c: char| c.is_ascii_digit())
    }

    /// The student's starting point: every file, with each marker's solution lines removed.
    pub fn skeleton(&self) -> Vec<LabFile> {
        self.files
            .iter()
            .map(|f| LabFile {
                path: f.path.clone(),
                // Markers were checked when the lab was read: skeleton() cannot fail here.
                data: match std::str::from_utf8(&f.data).map(markers::skeleton) {
                    Ok(Ok(text)) => text.into_bytes(),
                    _ => f.data.clone(),
                },
            })
            .collect()
    }
}

impl Lab {
    /// The exercise named by `selector` ([`Exercise::is_named`]).
    pub fn exercise(&self, selector: &str) -> Option<&Exercise> {
        self.exercises.iter().find(|e| e.is_named(selector))
    }
}

/// The labs built into this binary.
pub fn labs() -> Vec<Lab> {
    // The embedded labs are checked by this crate's tests; a broken one is a build mistake.
    from_files(embedded::FILES).unwrap_or_else(|e| panic!("the built-in labs are broken: {e}"))
}

/// The lab called `name` among the built-in ones.
pub fn lab(name: &str) -> Option<Lab> {
    labs().into_iter().find(|l| l.name == name)
}

/// Reads labs from `(path, contents)` pairs, paths as `LAB/EXERCISE/FILE` (`LAB/README.md` for
/// a lab's text). An error names the file: a spec that does not parse, a bad marker, a source
/// that is not UTF-8.
pub fn from_files(files: &[(&str, &[u8])]) -> Result<Vec<Lab>, String> {
    let mut labs: Vec<Lab> = Vec::new();
    let mut pending: Vec<(String, String, LabFile)> = Vec::new();
    for (path, data) in files {
        let mut parts = path.splitn(3, '/');
        let (Some(lab), Some(second)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !labs.iter().any(|l| l.name == lab) {
            labs.push(Lab {
                name: lab.to_string(),
                readme: None,
                exercises: Vec::new(),
            });
        }
        match parts.next() {
            None if second == "README.md" => {
                let l = labs
                    .iter_mut()
                    .find(|l| l.name == lab)
                    .expect("added above");
                l.readme = Some(String::from_utf8_lossy(data).into_owned());
            }
            None => {}
            Some(file) => pending.push((
                lab.to_string(),
                second.to_string(),
                LabFile {
                    path: file.to_string(),
                    data: data.to_vec(),
                },
            )),
        }
    }
    for lab in &mut labs {
        let mut names: Vec<&str> = pending
            .iter()
            .filter(|(l, _, f)| *l == lab.name && f.path == kmodlab_spec::SPEC_FILE)
            .map(|(_, e, _)| e.as_str())
            .collect();
        names.sort_by_key(|n| order_key(n));
        names.dedup();
        for name in names {
            let mut files: Vec<LabFile> = pending
                .iter()
                .filter(|(l, e, _)| *l == lab.name && e == name)
                .map(|(_, _, f)| f.clone())
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            lab.exercises.push(exercise(&lab.name, name, files)?);
        }
    }
    labs.retain(|l| !l.exercises.is_empty());
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(labs)
}

/// How exercises are ordered: by the number their name starts with (`2-printk` before
/// `10-memory-info`), then by name.
pub fn order_key(name: &str) -> (u64, String) {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    (digits.parse().unwrap_or(u64::MAX), name.to_string())
}

fn exercise(lab: &str, name: &str, files: Vec<LabFile>) -> Result<Exercise, String> {
    let where_ = |f: &LabFile| format!("labs/{lab}/{name}/{}", f.path);
    let mut spec = None;
    let mut todos: Vec<Todo> = Vec::new();
    for f in &files {
        let text = std::str::from_utf8(&f.data).map_err(|_| format!("{}: not UTF-8", where_(f)))?;
        if f.path == kmodlab_spec::SPEC_FILE {
            spec = Some(kmodlab_spec::parse(&where_(f), text).map_err(|e| e.to_string())?);
            continue;
        }
        for m in markers::markers(text).map_err(|e| format!("{}:{e}", where_(f)))? {
            if !todos.iter().any(|t| t.number == m.number) {
                todos.push(Todo {
                    number: m.number,
                    text: m.text,
                    file: f.path.clone(),
                    line: m.line,
                });
            }
        }
    }
    todos.sort_by_key(|t| t.number);
    let spec = spec.ok_or_else(|| format!("labs/{lab}/{name}: no {}", kmodlab_spec::SPEC_FILE))?;
    for c in &spec.cases {
        if let Some(n) = c
            .todo
            .iter()
            .find(|n| !todos.iter().any(|t| t.number == **n))
        {
            return Err(format!(
                "labs/{lab}/{name}/{}: case {:?} checks TODO {n}, which no source marks",
                kmodlab_spec::SPEC_FILE,
                c.name
            ));
        }
    }
    Ok(Exercise {
        name: name.to_string(),
        title: spec.title.clone().unwrap_or_else(|| name.to_string()),
        files,
        todos,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("demo/README.md", b"# Demo\n"),
            ("demo/1-hello/Kbuild", b"obj-m = hello.o\n"),
            (
                "demo/1-hello/hello.c",
                b"int init(void)\n{\n\t/* TODO 1/1: say hello */\n\tpr_info(\"hi\\n\");\n\treturn 0;\n}\n",
            ),
            (
                "demo/1-hello/kmodlab.toml",
                b"title = \"Hello\"\n[[case]]\nname = \"says hi\"\ntodo = [1]\n[case.load]\nlog = [\"^hi$\"]\n",
            ),
            ("demo/notes/x.c", b"no spec here\n"),
        ]
    }

    #[test]
    fn labs_read_from_files_with_their_todos_and_skeletons() {
        let labs = from_files(&small()).unwrap();
        assert_eq!(labs.len(), 1);
        let lab = &labs[0];
        assert_eq!(lab.readme.as_deref(), Some("# Demo\n"));
        assert_eq!(
            lab.exercises.len(),
            1,
            "a directory without a spec is no exercise"
        );
        let ex = lab.exercise("1").unwrap();
        assert_eq!(ex.title, "Hello");
        assert_eq!(
            ex.todos,
            vec![Todo {
                number: 1,
                text: "say hello".into(),
                file: "hello.c".into(),
                line: 3
            }]
        );
        let skel = ex.skeleton();
        let c = skel.iter().find(|f| f.path == "hello.c").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&c.data),
            "int init(void)\n{\n\t/* TODO 1/1: say hello */\n\treturn 0;\n}\n"
        );
        assert!(lab.exercise("1-hello").is_some());
        assert!(lab.exercise("hello").is_none());
        assert!(lab.exercise("2").is_none());
    }

    #[test]
    fn a_case_checking_an_unmarked_todo_is_an_error() {
        let mut files = small();
        files[3].1 = b"[[case]]\nname = \"x\"\ntodo = [2]\n";
        let e = from_files(&files).unwrap_err();
        assert!(e.contains("checks TODO 2, which no source marks"), "{e}");
        let mut files = small();
        files[2].1 = b"/* TODO 1/9: x */\n";
        let e = from_files(&files).unwrap_err();
        assert!(e.starts_with("labs/demo/1-hello/hello.c:line 1:"), "{e}");
    }

    #[test]
    fn the_built_in_labs_parse_and_every_exercise_has_checks() {
        let labs = labs();
        let km = labs.iter().find(|l| l.name == "kernel_modules").unwrap();
        assert!(km.exercises.len() >= 5);
        let keys: Vec<_> = km.exercises.iter().map(|e| order_key(&e.name)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "in the lab's order");
        assert_eq!(km.exercises[0].name, "1-2-test-mod");
        assert!(labs.iter().any(|l| l.name == "rust"));
        for lab in &labs {
            for ex in &lab.exercises {
                assert!(!ex.spec.cases.is_empty(), "{}/{}", lab.name, ex.name);
                assert!(
                    ex.files.iter().any(|f| f.path == "Kbuild"),
                    "{}/{} has no Kbuild",
                    lab.name,
                    ex.name
                );
                // Build products never ship.
                assert!(ex
                    .files
                    .iter()
                    .all(|f| !f.path.ends_with(".mod.c") && !f.path.ends_with(".o")));
            }
        }
    }
}
