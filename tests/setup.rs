//! `scripts/setup` adds the backports suites with the mirror apt already uses: read from its
//! sources in both formats Debian writes (`--print-mirror` shows the choice; the sources are
//! read from `KMODLAB_APT_DIR` here instead of /etc/apt).

mod util;
use util::*;

fn mirror_of(name: &str, files: &[(&str, &str)]) -> String {
    let apt = scratch(&format!("apt-{name}"));
    std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
    for (path, text) in files {
        std::fs::write(apt.join(path), text).unwrap();
    }
    let out = std::process::Command::new(repo().join("scripts/setup"))
        .arg("--print-mirror")
        .env("KMODLAB_APT_DIR", &apt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_mirror_comes_from_one_line_sources() {
    let m = mirror_of(
        "one-line",
        &[(
            "sources.list",
            "# a comment\n\
             deb http://security.debian.org/debian-security bookworm-security main\n\
             deb-src http://src.example/debian bookworm main\n\
             deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.local/debian bookworm main contrib\n",
        )],
    );
    assert_eq!(m, "http://mirror.local/debian");
    let m = mirror_of(
        "one-option",
        &[(
            "sources.list.d/local.list",
            "deb [trusted=yes] http://proxy:3142/debian bookworm main\n",
        )],
    );
    assert_eq!(m, "http://proxy:3142/debian");
}

#[test]
fn the_mirror_comes_from_deb822_sources() {
    let m = mirror_of(
        "deb822",
        &[(
            "sources.list.d/debian.sources",
            "Types: deb\n\
             URIs: http://disabled.example/debian\n\
             Suites: bookworm\n\
             Components: main\n\
             Enabled: no\n\
             \n\
             Types: deb-src\n\
             URIs: http://src.example/debian\n\
             Suites: bookworm\n\
             \n\
             Types: deb deb-src\n\
             # http://deb.debian.org/debian\n\
             URIs: http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             Suites: bookworm bookworm-updates\n\
             Components: main\n\
             \n\
             Types: deb\n\
             URIs: http://deb.debian.org/debian-security\n\
             Suites: bookworm-security\n",
        )],
    );
    assert_eq!(
        m,
        "http://snapshot.debian.org/archive/debian/20250520T000000Z"
    );
}

#[test]
fn without_a_bookworm_source_the_mirror_is_debians() {
    let m = mirror_of(
        "none",
        &[(
            "sources.list.d/other.sources",
            "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n",
        )],
    );
    assert_eq!(m, "http://deb.debian.org/debian");
}
