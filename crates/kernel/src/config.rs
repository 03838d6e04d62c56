//! The config fragments and the check that they stuck.

/// The Rust lab kernel's config fragment (`crates/kernel/config/rust-lab.config`), merged on top
/// of `make tinyconfig`.
pub const FRAGMENT: &str = include_str!("../config/rust-lab.config");

/// The debug lab kernel's config fragment (`crates/kernel/config/debug-lab.config`), merged after
/// [`FRAGMENT`].
pub const DEBUG_FRAGMENT: &str = include_str!("../config/debug-lab.config");

/// One option a fragment sets: `CONFIG_X=y` (`value` "y"), `CONFIG_X=n` or
/// `# CONFIG_X is not set` (`value` "n"), or any other value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigOption {
    /// `CONFIG_X`.
    pub name: String,
    /// `y`, `n`, `m`, or the value as written (`"..."`, a number).
    pub value: String,
}

/// The options of a config file or fragment, in order (comments and blank lines skipped).
pub fn parse_config(text: &str) -> Vec<ConfigOption> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix("# ") {
                let name = rest.strip_suffix(" is not set")?;
                return name.starts_with("CONFIG_").then(|| ConfigOption {
                    name: name.to_string(),
                    value: "n".into(),
                });
            }
            let (name, value) = l.split_once('=')?;
            name.starts_with("CONFIG_").then(|| ConfigOption {
                name: name.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

/// The options of fragments merged in order, as `merge_config.sh` merges them: a later line for
/// the same option wins; options keep the place of their first line.
pub fn effective_options(fragments: &[&str]) -> Vec<ConfigOption> {
    let mut out: Vec<ConfigOption> = Vec::new();
    for o in fragments.iter().flat_map(|f| parse_config(f)) {
        match out.iter_mut().find(|e| e.name == o.name) {
            Some(e) => e.value = o.value,
            None => out.push(o),
        }
    }
    out
}

/// The fragment's options that the final `.config` does not have as asked: every `=y` (and `=m`)
/// line must be there as written, every `=n` must be unset, any other value (a number, a string)
/// must be there as written. Returned as the fragment writes them (`CONFIG_RUST=y`).
pub fn options_not_stuck(fragment: &str, config: &str) -> Vec<String> {
    not_stuck(&effective_options(&[fragment]), config)
}

/// [`options_not_stuck`] for options already merged ([`effective_options`]).
pub fn not_stuck(options: &[ConfigOption], config: &str) -> Vec<String> {
    let have: std::collections::HashMap<String, String> = parse_config(config)
        .into_iter()
        .map(|o| (o.name, o.value))
        .collect();
    options
        .iter()
        .filter(|o| have.get(&o.name).map(String::as_str).unwrap_or("n") != o.value)
        .map(|o| format!("{}={}", o.name, o.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fragment_asks_for_rust_and_debug_info() {
        let opts = parse_config(FRAGMENT);
        let want = |n: &str, v: &str| opts.iter().any(|o| o.name == n && o.value == v);
        assert!(want("CONFIG_RUST", "y"));
        assert!(want("CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT", "y"));
        assert!(want("CONFIG_MODULES", "y"));
        assert!(want("CONFIG_MODVERSIONS", "n"));
    }

    #[test]
    fn options_that_did_not_stick_are_named() {
        let fragment = "# comment\nCONFIG_RUST=y\nCONFIG_MODULES=y\nCONFIG_TMPFS=y\n\
                        CONFIG_MODVERSIONS=n\n# CONFIG_GCC_PLUGINS is not set\n";
        let config = "CONFIG_MODULES=y\n# CONFIG_RUST is not set\nCONFIG_MODVERSIONS=y\n\
                      CONFIG_GCC_PLUGINS=y\nCONFIG_HZ=250\n";
        assert_eq!(
            options_not_stuck(fragment, config),
            vec![
                "CONFIG_RUST=y",
                "CONFIG_TMPFS=y",
                "CONFIG_MODVERSIONS=n",
                "CONFIG_GCC_PLUGINS=n"
            ]
        );
        let good = "CONFIG_MODULES=y\nCONFIG_RUST=y\nCONFIG_TMPFS=y\n\
                    # CONFIG_MODVERSIONS is not set\n";
        assert!(options_not_stuck(fragment, good).is_empty());
    }

    #[test]
    fn numbers_must_stick_as_written_and_later_fragments_win() {
        let merged = effective_options(&[
            "CONFIG_A=y\nCONFIG_POOL=100\nCONFIG_B=y\n",
            "CONFIG_A=n\nCONFIG_POOL=16000\n",
        ]);
        let shown: Vec<String> = merged
            .iter()
            .map(|o| format!("{}={}", o.name, o.value))
            .collect();
        assert_eq!(shown, vec!["CONFIG_A=n", "CONFIG_POOL=16000", "CONFIG_B=y"]);
        assert_eq!(
            not_stuck(&merged, "CONFIG_B=y\nCONFIG_POOL=100\n"),
            vec!["CONFIG_POOL=16000"]
        );
        assert!(not_stuck(
            &merged,
            "CONFIG_B=y\nCONFIG_POOL=16000\n# CONFIG_A is not set\n"
        )
        .is_empty());
    }

    #[test]
    fn parse_reads_values_and_unset_lines() {
        let o = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# note\n");
        assert_eq!(o.len(), 3);
        assert_eq!((o[1].name.as_str(), o[1].value.as_str()), ("CONFIG_B", "n"));
        assert_eq!(o[2].value, "\"x y\"");
    }
}
