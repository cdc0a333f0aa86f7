//! A minimal command-line parser: `--name value` pairs and bare flags, nothing else.

use std::collections::BTreeMap;

/// Parsed `--name value` options.
#[derive(Debug, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses `argv` (without the program name). `value_options` take a value; `flags` do not.
    /// `-o` is accepted as a short form of `--output`.
    pub fn parse(
        argv: impl IntoIterator<Item = String>,
        value_options: &[&str],
        flags: &[&str],
    ) -> Result<Args, String> {
        let mut args = Args::default();
        let mut iter = argv.into_iter();
        while let Some(arg) = iter.next() {
            let name = match arg.as_str() {
                "-o" => "output".to_string(),
                other => match other.strip_prefix("--") {
                    Some(name) => name.to_string(),
                    None => return Err(format!("unexpected argument `{other}`")),
                },
            };
            let (name, inline) = match name.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (name, None),
            };
            if flags.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                args.values.insert(name, String::new());
            } else if value_options.contains(&name.as_str()) {
                let value = match inline {
                    Some(value) => value,
                    None => iter
                        .next()
                        .ok_or_else(|| format!("--{name} needs a value"))?,
                };
                if args.values.insert(name.clone(), value).is_some() {
                    return Err(format!("--{name} given twice"));
                }
            } else {
                return Err(format!("unknown option `{arg}`"));
            }
        }
        Ok(args)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// A number, with `_` and `,` allowed as digit separators (`1_000_000`).
    pub fn number(&self, name: &str) -> Result<Option<u64>, String> {
        self.get(name)
            .map(|text| {
                text.replace(['_', ','], "")
                    .parse::<u64>()
                    .map_err(|_| format!("--{name}: `{text}` is not a whole number"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, String> {
        Args::parse(
            words.iter().map(|word| word.to_string()),
            &["events", "seed", "output"],
            &["quiet"],
        )
    }

    #[test]
    fn options_flags_and_short_output() {
        let args = parse(&[
            "--events", "10_000", "--seed=7", "-o", "x.ndjson", "--quiet",
        ])
        .unwrap();
        assert_eq!(args.number("events").unwrap(), Some(10_000));
        assert_eq!(args.number("seed").unwrap(), Some(7));
        assert_eq!(args.get("output"), Some("x.ndjson"));
        assert!(args.has("quiet"));
        assert!(parse(&["--events"]).is_err());
        assert!(parse(&["--colour", "red"]).is_err());
        assert!(parse(&["stray"]).is_err());
        assert!(parse(&["--seed", "1", "--seed", "2"]).is_err());
        assert!(
            parse(&["--events", "ten"])
                .unwrap()
                .number("events")
                .is_err()
        );
    }
}
