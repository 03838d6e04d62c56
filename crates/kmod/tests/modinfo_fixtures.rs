//! `modinfo` on handmade fixtures (`tests/fixtures/modinfo`, see its README): what Debian's
//! module tree lacks. Uncompressed, zstd and gzip modules, unsigned modules, every signature
//! format and the broken ones, odd `.modinfo` entries and parameters, truncated and corrupt
//! files, name and alias lookups in a small depmod-indexed tree (dependencies, built-in
//! modules, wildcards, symbols), and option errors.
//!
//! Each case is checked against its expected output in `tests/fixtures/modinfo/expected/`
//! (stdout, stderr and exit code, with the fixture folder written `@DIR@`), and, where
//! `/sbin/modinfo` exists, against kmod run on the spot. The expected outputs come from kmod,
//! except for the cases marked `Ours`, where kmodlab differs on purpose (the reason is given).
//! `KMODLAB_REGEN_MODINFO=1` writes them again.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const KMOD_MODINFO: &str = "/sbin/modinfo";
const TREE: &str = "-b@DIR@/tree";
const KVER: &str = "-k6.12.0-fixture";

/// Whose output a case expects.
#[derive(Clone, Copy)]
enum Reference {
    /// kmod's: compared with `/sbin/modinfo` too when it exists.
    Kmod,
    /// kmodlab's own, because it differs from Debian's kmod on purpose, for this reason.
    Ours(&'static str),
}
use Reference::{Kmod, Ours};

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    reference: Reference,
}

const fn case(name: &'static str, args: &'static [&'static str]) -> Case {
    Case {
        name,
        args,
        reference: Kmod,
    }
}

const NO_ZLIB: &str = "Debian builds kmod without zlib: it takes a .ko.gz for an unknown alias";

const CASES: &[Case] = &[
    // Module files: formats, odd entries, parameters.
    case("param", &["@DIR@/param.ko"]),
    case("param-xz", &["@DIR@/param.ko.xz"]),
    case("param-zst", &["@DIR@/param.ko.zst"]),
    Case {
        name: "param-gz",
        args: &["@DIR@/param.ko.gz"],
        reference: Ours(NO_ZLIB),
    },
    case("param-null", &["-0", "@DIR@/param.ko"]),
    case("param-field-parm", &["-F", "parm", "@DIR@/param.ko"]),
    case("param-field-parm-null", &["-p0", "@DIR@/param.ko"]),
    case(
        "param-field-parmtype",
        &["--field=parmtype", "@DIR@/param.ko"],
    ),
    case("param-field-alias", &["-F", "alias", "@DIR@/param.ko"]),
    case("param-field-novalue", &["-F", "novalue", "@DIR@/param.ko"]),
    case("param-field-empty", &["-F", "", "@DIR@/param.ko"]),
    case("param-field-filename", &["-n", "@DIR@/param.ko"]),
    case("param-author", &["-a", "@DIR@/param.ko"]),
    case("param-description", &["--description", "@DIR@/param.ko"]),
    case("param-license", &["-l", "@DIR@/param.ko"]),
    case("param-field-name", &["-F", "name", "@DIR@/param.ko"]),
    case("relative-path", &["tests/fixtures/modinfo/param.ko"]),
    case(
        "several-files",
        &["@DIR@/param.ko", "@DIR@/empty.ko", "@DIR@/param.ko.zst"],
    ),
    // Signatures.
    case("signed-rsa-sha512", &["@DIR@/signed-rsa-sha512.ko"]),
    case("signed-ec-sha256", &["@DIR@/signed-ec-sha256.ko"]),
    case("signed-no-cn-sha1", &["@DIR@/signed-no-cn-sha1.ko"]),
    case(
        "signed-negative-serial",
        &["@DIR@/signed-negative-serial-sha224.ko"],
    ),
    case(
        "signed-zero-serial",
        &["@DIR@/signed-zero-serial-sha384.ko"],
    ),
    case("signed-unknown-hash", &["@DIR@/signed-unknown-hash.ko"]),
    case("signed-null", &["-0", "@DIR@/signed-rsa-sha512.ko"]),
    case(
        "signed-field-signature",
        &["-F", "signature", "@DIR@/signed-rsa-sha512.ko"],
    ),
    case(
        "signed-field-signer",
        &[
            "-F",
            "signer",
            "@DIR@/signed-ec-sha256.ko",
            "@DIR@/sig-pgp.ko",
        ],
    ),
    case(
        "signed-field-sig-key",
        &["-F", "sig_key", "@DIR@/signed-ec-sha256.ko"],
    ),
    case("sig-x509", &["@DIR@/sig-x509.ko"]),
    case("sig-pgp", &["@DIR@/sig-pgp.ko"]),
    case(
        "sig-refused",
        &[
            "-F",
            "sig_id",
            "@DIR@/sig-bad-id-type.ko",
            "@DIR@/sig-bad-hash.ko",
            "@DIR@/sig-bad-algo.ko",
            "@DIR@/sig-zero-length.ko",
            "@DIR@/sig-too-long.ko",
            "@DIR@/sig-bad-der.ko",
            "@DIR@/sig-magic-only.ko",
        ],
    ),
    case("sig-bad-der", &["@DIR@/sig-bad-der.ko"]),
    // Broken files.
    case("empty", &["@DIR@/empty.ko"]),
    case("short", &["@DIR@/short.ko"]),
    case("not-elf", &["@DIR@/not-elf.ko"]),
    case("truncated", &["@DIR@/truncated.ko"]),
    case("truncated-xz", &["@DIR@/truncated.ko.xz"]),
    case("truncated-zst", &["@DIR@/truncated.ko.zst"]),
    case("big-zst", &["@DIR@/big.ko.zst"]),
    case("corrupt-xz", &["@DIR@/corrupt.ko.xz"]),
    case("bad-shentsize", &["@DIR@/bad-shentsize.ko"]),
    case("bad-class", &["@DIR@/bad-class.ko"]),
    case("no-modinfo", &["@DIR@/no-modinfo.ko"]),
    case(
        "broken-filename-only",
        &["-F", "filename", "@DIR@/empty.ko", "@DIR@/no-modinfo.ko"],
    ),
    case("missing-file", &["@DIR@/missing.ko"]),
    case("directory", &["@DIR@/tree"]),
    // Lookups in the fixture tree.
    case("tree-name", &[TREE, KVER, "param"]),
    case("tree-dash-name", &[TREE, KVER, "uses-param"]),
    case("tree-zst", &[TREE, KVER, "mini"]),
    case("tree-alias", &[TREE, KVER, "kmodlab:tiny"]),
    case(
        "tree-wildcard-two-modules",
        &[TREE, KVER, "-n", "pci:v00001234d00005678sv0sd0bc0sc0i0"],
    ),
    case(
        "tree-wildcard-one-module",
        &[TREE, KVER, "-n", "pci:v00001234d00000001sv0sd0bc0sc0i0"],
    ),
    case(
        "tree-symbol",
        &[TREE, KVER, "-n", "symbol:param_shared_value"],
    ),
    case("tree-builtin", &[TREE, KVER, "builtin_one"]),
    case("tree-builtin-null", &[TREE, KVER, "-0", "builtin-one"]),
    case(
        "tree-builtin-name",
        &[TREE, KVER, "-F", "name", "builtin_one"],
    ),
    case("tree-builtin-parm", &[TREE, KVER, "-p", "builtin_one"]),
    case(
        "tree-builtin-filename",
        &[TREE, KVER, "-F", "filename", "builtin_one"],
    ),
    case("tree-builtin-alias", &[TREE, KVER, "kmodlab-builtin-foo"]),
    case("tree-builtin-no-modinfo", &[TREE, KVER, "builtin-two"]),
    case("tree-not-a-module", &[TREE, KVER, "core"]),
    case("tree-not-found", &[TREE, KVER, "nonexistent", "param"]),
    case("tree-bad-alias", &[TREE, KVER, "foo]", "a[b"]),
    case("tree-file-name-is-not-a-name", &[TREE, KVER, "param.ko"]),
    case("tree-modname", &[TREE, KVER, "-m", "-n", "uses-param.ko"]),
    case("tree-modname-alias", &[TREE, KVER, "-m", "kmodlab-param"]),
    case(
        "tree-modname-builtin",
        &[TREE, KVER, "-m", "-n", "builtin_one"],
    ),
    case(
        "tree-long-options",
        &[
            "--basedir=@DIR@/tree",
            "--set-version",
            "6.12.0-fixture",
            "--null",
            "--field",
            "depends",
            "uses_param",
        ],
    ),
    case("tree-missing-version", &[TREE, "-k", "0.0-none", "param"]),
    // Options.
    case("no-arguments", &[]),
    case("help", &["-h"]),
    case("help-first-wins", &["--help", "-x"]),
    case("bad-option", &["-x", "--help"]),
    case("missing-field", &["-F"]),
    case("missing-long-argument", &["--field"]),
    case("ambiguous", &["--f=x", "@DIR@/param.ko"]),
    case("unrecognized", &["--nope", "@DIR@/param.ko"]),
    case("no-argument-allowed", &["--auth=x", "@DIR@/param.ko"]),
    case("double-dash", &["--", "-F"]),
    Case {
        name: "version",
        args: &["-V"],
        reference: Ours("kmodlab reads .ko.gz, so it says +ZLIB"),
    },
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modinfo")
}

fn args_of(case: &Case) -> Vec<OsString> {
    let dir = fixture_dir();
    let dir = dir.to_str().expect("UTF-8 fixture path");
    case.args
        .iter()
        .map(|a| OsString::from(a.replace("@DIR@", dir)))
        .collect()
}

/// stdout, stderr and exit code in one text, with the fixture folder written `@DIR@`.
fn record(stdout: &[u8], stderr: &[u8], code: i32) -> Vec<u8> {
    let dir = fixture_dir();
    let dir = dir.to_str().expect("UTF-8 fixture path").as_bytes();
    let mut out = stdout.to_vec();
    out.extend_from_slice(b"\n--- stderr\n");
    out.extend_from_slice(stderr);
    out.extend_from_slice(format!("\n--- exit {code}\n").as_bytes());
    replace(&out, dir, b"@DIR@")
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn ours(args: &[OsString]) -> Vec<u8> {
    let mut argv = vec![OsString::from("modinfo")];
    argv.extend_from_slice(args);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = kmodlab_kmod::modinfo::run(
        &argv,
        &kmodlab_kmod::kernel_state::Kernel::host(),
        &mut stdout,
        &mut stderr,
    );
    record(&stdout, &stderr, code)
}

fn kmod(args: &[OsString]) -> Vec<u8> {
    let output = Command::new(KMOD_MODINFO)
        .arg0("modinfo")
        .args(args)
        .env_remove("POSIXLY_CORRECT")
        .env_remove("KMOD_LOG")
        .output()
        .expect("run /sbin/modinfo");
    record(
        &output.stdout,
        &output.stderr,
        output.status.code().unwrap_or(128),
    )
}

#[test]
fn fixtures_match_expected_and_kmod() {
    let expected_dir = fixture_dir().join("expected");
    let regen = std::env::var_os("KMODLAB_REGEN_MODINFO").is_some();
    let have_kmod = Path::new(KMOD_MODINFO).exists();
    if !have_kmod {
        eprintln!("{KMOD_MODINFO} not found: comparing with the expected outputs only");
    }
    let mut failures = Vec::new();
    for case in CASES {
        let args = args_of(case);
        let mine = ours(&args);
        let path = expected_dir.join(case.name);
        if regen {
            std::fs::create_dir_all(&expected_dir).unwrap();
            let text = match case.reference {
                Kmod => kmod(&args),
                Ours(_) => mine.clone(),
            };
            std::fs::write(&path, text).unwrap();
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if mine != expected {
            failures.push(format!(
                "{} {:?}: differs from {}\n--- expected\n{}\n--- ours\n{}",
                case.name,
                case.args,
                path.display(),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&mine)
            ));
        }
        match case.reference {
            Kmod if have_kmod => {
                let theirs = kmod(&args);
                if theirs != mine {
                    failures.push(format!(
                        "{} {:?}: differs from kmod\n--- kmod\n{}\n--- ours\n{}",
                        case.name,
                        case.args,
                        String::from_utf8_lossy(&theirs),
                        String::from_utf8_lossy(&mine)
                    ));
                }
            }
            Ours(why) => println!("{}: kmodlab's own output ({why})", case.name),
            Kmod => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A copy of the fixture tree in a temporary folder, removed when dropped.
struct TempTree(PathBuf);

impl TempTree {
    fn new(tag: &str) -> TempTree {
        let dir =
            std::env::temp_dir().join(format!("kmodlab-modinfo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixture_dir().join("tree"), &dir);
        TempTree(dir)
    }

    fn modules(&self) -> PathBuf {
        self.0.join("lib/modules/6.12.0-fixture")
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// libkmod prints its context's address in one message: mask it.
fn mask_pointers(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    let mut rest = &*text;
    while let Some(at) = rest.find("ctx=0x") {
        out.push_str(&rest[..at + 6]);
        rest = rest[at + 6..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
        out.push_str("...");
    }
    out.push_str(rest);
    out
}

/// What a stale tree does: a dependency's file gone (libkmod logs it), a module file gone, no
/// `modules.builtin.modinfo`, an index that is not one. Only against kmod itself.
#[test]
fn stale_trees_like_kmod() {
    if kmodlab_testkit::require(KMOD_MODINFO).is_none() {
        return;
    }
    let tree = TempTree::new("stale");
    let modules = tree.modules();
    std::fs::remove_file(modules.join("kernel/drivers/misc/param.ko")).unwrap();
    std::fs::remove_file(modules.join("modules.builtin.modinfo")).unwrap();
    std::fs::write(modules.join("modules.symbols.bin"), b"not an index").unwrap();
    let base = format!("-b{}", tree.0.display());
    for names in [
        &["uses-param"][..],
        &["-n", "kmodlab-uses-param"],
        &["param", "kmodlab-param"],
        &["builtin_one", "-F", "name"],
        &["symbol:param_shared_value"],
    ] {
        let mut args = vec![OsString::from(&base), OsString::from(KVER)];
        args.extend(names.iter().map(OsString::from));
        let (theirs, mine) = (kmod(&args), ours(&args));
        assert_eq!(mask_pointers(&theirs), mask_pointers(&mine), "{names:?}");
    }
    // KMOD_LOG=0 silences libkmod's own messages.
    let args = [
        OsString::from(&base),
        OsString::from(KVER),
        "uses_param".into(),
    ];
    let quiet = Command::new(KMOD_MODINFO)
        .arg0("modinfo")
        .args(&args)
        .env("KMOD_LOG", "0")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("libkmod"));
}

/// Every prefix of a signed, compressed module and bytes flipped all over one: never a
/// panic, and the same answer as kmod for a sample of them.
#[test]
fn truncated_and_corrupted_modules_never_panic() {
    let dir = std::env::temp_dir().join(format!("kmodlab-modinfo-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let have_kmod = Path::new(KMOD_MODINFO).exists();
    let mut mismatches = Vec::new();
    for source in [
        "signed-rsa-sha512.ko",
        "param.ko.xz",
        "param.ko.zst",
        "big.ko.zst",
    ] {
        let bytes = std::fs::read(fixture_dir().join(source)).unwrap();
        let ext = if source.ends_with(".xz") {
            "ko.xz"
        } else if source.ends_with(".zst") {
            "ko.zst"
        } else {
            "ko"
        };
        let path = dir.join(format!("cut.{ext}"));
        // Every prefix of the zstd stream of several blocks; every 7th of the others.
        let step = if source == "big.ko.zst" { 1 } else { 7 };
        let mut variants: Vec<Vec<u8>> = (0..bytes.len())
            .step_by(step)
            .map(|n| bytes[..n].to_vec())
            .collect();
        for at in (0..bytes.len()).step_by(5) {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5a;
            variants.push(flipped);
        }
        for (i, variant) in variants.iter().enumerate() {
            std::fs::write(&path, variant).unwrap();
            let args = [path.clone().into_os_string()];
            let mine = ours(&args);
            // kmod itself aborts on some corrupt section tables (an assertion): compare a
            // sample, skipping those.
            if have_kmod && (i % 4 == 0 || step == 1) {
                let theirs = kmod(&args);
                if theirs.ends_with(b"--- exit 134\n") || theirs.ends_with(b"--- exit 128\n") {
                    continue;
                }
                if theirs != mine && mismatches.len() < 5 {
                    mismatches.push(format!(
                        "{source} variant {i}:\n--- kmod\n{}\n--- ours\n{}",
                        String::from_utf8_lossy(&theirs),
                        String::from_utf8_lossy(&mine)
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}
