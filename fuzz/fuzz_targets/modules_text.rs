//! depmod's text files read back (`kmodlab_modindex::text`): the input as `modules.dep`,
//! `modules.alias` / `modules.symbols`, `modules.softdep` and `modules.devname`, each parse
//! written back in the file's format and read back the same; as `modules.order`, the order it
//! gives its own modules (`kmodlab_modindex::depmod::module_order`); and as `modules.builtin`,
//! turned into `modules.builtin.bin` (`depmod::modules_builtin_bin`), in which every module
//! name of a valid line must be found (`Index::parse`, `lookup`, `entries`).
#![no_main]

use kmodlab_modindex::depmod::{module_order, modules_builtin_bin};
use kmodlab_modindex::names::path_to_modname;
use kmodlab_modindex::text::{
    lines, parse_aliases, parse_devnames, parse_modules_dep, parse_softdeps,
};
use kmodlab_modindex::Index;
use libfuzzer_sys::fuzz_target;

fn is_word(w: &[u8]) -> bool {
    !w.is_empty() && !w.iter().any(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fuzz_target!(|data: &[u8]| {
    // Lines: joined again they are the file.
    let all: Vec<&[u8]> = lines(data).collect();
    let mut joined = all.join(&b'\n');
    if !all.is_empty() && data.ends_with(b"\n") {
        joined.push(b'\n');
    }
    assert_eq!(joined, data);

    // modules.dep.
    let deps = parse_modules_dep(data);
    assert_eq!(deps.len(), all.iter().filter(|l| l.contains(&b':')).count());
    let mut text = Vec::new();
    for d in &deps {
        assert!(!d.path.contains(&b':') && !d.path.contains(&b'\n'));
        assert!(d.dependencies.iter().all(|w| is_word(w)));
        text.extend_from_slice(d.path);
        text.push(b':');
        for w in &d.dependencies {
            text.push(b' ');
            text.extend_from_slice(w);
        }
        text.push(b'\n');
    }
    assert_eq!(parse_modules_dep(&text), deps);

    // modules.alias and modules.symbols.
    let aliases = parse_aliases(data);
    let mut text = b"# Aliases extracted from modules themselves.\n".to_vec();
    for (pattern, module) in &aliases {
        assert!(is_word(pattern) && is_word(module));
        text.extend_from_slice(&[&b"alias "[..], pattern, b" ", module, b"\n"].concat());
    }
    assert_eq!(parse_aliases(&text), aliases);

    // modules.softdep.
    let softdeps = parse_softdeps(data);
    let mut text = b"# Soft dependencies extracted from modules themselves.\n".to_vec();
    for (module, value) in &softdeps {
        assert!(!module.contains(&b' ') && !module.contains(&b'\n') && !value.contains(&b'\n'));
        text.extend_from_slice(&[&b"softdep "[..], module, b" ", value, b"\n"].concat());
    }
    assert_eq!(parse_softdeps(&text), softdeps);

    // modules.devname.
    let devnames = parse_devnames(data);
    let mut text = b"# Device nodes to trigger on-demand module loading.\n".to_vec();
    for d in &devnames {
        assert!(is_word(d.module) && is_word(d.devname) && !d.module.starts_with(b"#"));
        assert!(d.kind == b'c' || d.kind == b'b');
        text.extend_from_slice(&[d.module, b" ", d.devname, b" "].concat());
        text.extend_from_slice(format!("{}{}:{}\n", d.kind as char, d.major, d.minor).as_bytes());
    }
    assert_eq!(parse_devnames(&text), devnames);

    // modules.order, over the modules it names (a permutation, with or without the file).
    let modules: Vec<(&[u8], Option<&[u8]>)> = all
        .iter()
        .take(256)
        .map(|l| (kmodlab_modindex::names::basename(l), Some(*l)))
        .collect();
    for order_file in [None, Some(data)] {
        let (order, diagnostics) = module_order(&modules, order_file, "modules.order");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert!(
            sorted.iter().copied().eq(0..modules.len()),
            "not a permutation: {order:?}"
        );
        assert!(diagnostics.len() <= 1);
    }

    // modules.builtin, as depmod turns it into modules.builtin.bin: fgets with a PATH_MAX
    // buffer, lines starting with a letter give a module name, the others a message.
    let Ok((bin, diagnostics)) = modules_builtin_bin(data) else {
        assert!(!data.is_ascii());
        return;
    };
    let index = Index::parse(&bin).expect("a written index parses");
    if data.split(|&b| b == b'\n').all(|l| l.len() < 4000) {
        let mut names = Vec::new();
        let mut invalid = 0;
        for line in data.split_inclusive(|&b| b == b'\n') {
            let line = line.split(|&b| b == 0).next().unwrap_or_default();
            if line.first().is_some_and(u8::is_ascii_alphabetic) {
                names.push(path_to_modname(line).unwrap_or_default());
            } else {
                invalid += 1;
            }
        }
        assert_eq!(diagnostics.len(), invalid);
        for name in &names {
            assert_eq!(index.lookup(name).expect("the index reads"), Some(&b""[..]));
        }
        // One value per valid line, a name given twice included (kmod keeps both).
        assert_eq!(index.entries().expect("the index dumps").len(), names.len());
    }
});
