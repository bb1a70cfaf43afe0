//! `--config FILE.toml`: a command's flags read from a TOML file, for the commands that define `--config`.
//!
//! Keys are the long flag names (`batch-size` or `batch_size`); values are TOML strings, integers, floats,
//! booleans (for switches such as `overwrite`) or arrays (joined with commas: `grids = [8, 4, 2]`). The file's
//! flags are placed before the command line's, and those commands let a later flag override an earlier one
//! (`args_override_self`), so anything given on the command line wins. Every key is checked against the command
//! before clap sees it, so a mistake names the file and the key rather than a flag the user never typed.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command};

use super::CliError;

/// What kind of TOML value a flag takes, from its clap value parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Boolean,
    Integer,
    Number,
    /// Strings (paths, names, lists like `8,4,2`); numbers are accepted too and passed on as written.
    Text,
}

impl Expected {
    fn of(arg: &Arg) -> Expected {
        use std::any::TypeId;
        if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            return Expected::Boolean;
        }
        let t = arg.get_value_parser().type_id();
        let integers = [TypeId::of::<usize>(), TypeId::of::<u64>(), TypeId::of::<u32>(), TypeId::of::<i64>(), TypeId::of::<i32>()];
        if integers.iter().any(|i| t == *i) {
            Expected::Integer
        } else if t == TypeId::of::<f32>() || t == TypeId::of::<f64>() {
            Expected::Number
        } else {
            Expected::Text
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expected::Boolean => "a boolean (true or false)",
            Expected::Integer => "an integer",
            Expected::Number => "a number",
            Expected::Text => "a string",
        }
    }
}

fn usage_error(path: &Path, message: String) -> CliError {
    CliError { code: 2, message: format!("--config {}: {message}", path.display()) }
}

/// The flag text of one TOML value, or `None` when its type does not fit `expected`.
fn value_text(value: &toml::Value, expected: Expected) -> Option<String> {
    use toml::Value as V;
    match (value, expected) {
        (V::Boolean(b), Expected::Boolean) => Some(b.to_string()),
        (V::Integer(i), Expected::Integer | Expected::Number | Expected::Text) => Some(i.to_string()),
        (V::Float(x), Expected::Number | Expected::Text) => Some(x.to_string()),
        (V::String(s), Expected::Text) => Some(s.clone()),
        (V::Array(items), Expected::Text) => {
            let parts: Option<Vec<String>> = items.iter().map(|v| value_text(v, Expected::Text).filter(|_| !v.is_array())).collect();
            parts.map(|p| p.join(","))
        }
        _ => None,
    }
}

/// The command line flags `path` stands for, checked against `cmd` (the subcommand that defines `--config`).
pub fn flags_from_file(path: &Path, cmd: &Command) -> Result<Vec<OsString>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError { code: 1, message: format!("--config {}: {e}", path.display()) })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| usage_error(path, format!("not valid TOML: {}", e.message())))?;
    // Every flag is optional here: each key's value is checked on its own, the required ones later with the rest.
    let mut probe = cmd.clone().mut_args(|a| a.required(false)).no_binary_name(true);
    let mut flags = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && long != "config" && long != "help");
        let Some(arg) = arg else {
            let mut known: Vec<&str> = cmd.get_arguments().filter_map(Arg::get_long).filter(|l| !["config", "help"].contains(l)).collect();
            known.sort_unstable();
            return Err(usage_error(path, format!("unknown key '{key}' for `fgssl {}` (its keys: {})", cmd.get_name(), known.join(", "))));
        };
        let expected = Expected::of(arg);
        let Some(text) = value_text(value, expected) else {
            let shown = match value {
                toml::Value::String(s) => format!("\"{s}\""),
                toml::Value::Boolean(b) => b.to_string(),
                other => value_text(other, Expected::Text).unwrap_or_else(|| other.type_str().to_string()),
            };
            return Err(usage_error(path, format!("key '{key}' must be {}, not {} {shown}", expected.name(), value.type_str())));
        };
        let flag = match expected {
            Expected::Boolean if text == "true" => format!("--{long}"),
            // A switch set to false is the default: nothing to pass.
            Expected::Boolean => continue,
            _ => format!("--{long}={text}"),
        };
        if let Err(e) = probe.try_get_matches_from_mut([flag.clone()]) {
            let reason = e.to_string();
            let reason = reason.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
            return Err(usage_error(path, format!("key '{key}': {reason}")));
        }
        flags.push(OsString::from(flag));
    }
    Ok(flags)
}

/// `args` with the flags of `--config FILE` (if present after the subcommand) inserted right after the subcommand,
/// so that the command line's own flags come later and override them. `cli` is the whole command.
pub fn expand(args: Vec<OsString>, cli: &Command) -> Result<Vec<OsString>, CliError> {
    let Some(sub) = args.get(1).and_then(|s| s.to_str()).and_then(|name| cli.find_subcommand(name)) else { return Ok(args) };
    if !sub.get_arguments().any(|a| a.get_long() == Some("config")) {
        return Ok(args);
    }
    let mut file = None;
    for (i, a) in args.iter().enumerate().skip(2) {
        let Some(a) = a.to_str() else { continue };
        if a == "--" {
            break;
        }
        if a == "--config" {
            file = args.get(i + 1).cloned();
        } else if let Some(p) = a.strip_prefix("--config=") {
            file = Some(OsString::from(p));
        }
    }
    // A missing value is clap's error to report.
    let Some(file) = file else { return Ok(args) };
    let flags = flags_from_file(Path::new(&file), sub)?;
    let mut out = args[..2].to_vec();
    out.extend(flags);
    out.extend(args[2..].iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Parser};

    #[derive(Parser, Debug)]
    #[command(args_override_self = true)]
    struct Demo {
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 0.1)]
        lr: f32,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        grids: Option<String>,
        #[arg(long)]
        overwrite: bool,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    }

    fn with_file(text: &str, extra: &[&str]) -> Result<Demo, String> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fgssl-config-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        let cli = Command::new("fgssl").subcommand(Demo::augment_args(Command::new("demo")).args_override_self(true));
        let mut args: Vec<OsString> = ["fgssl", "demo", "--config", path.to_str().unwrap()].iter().map(OsString::from).collect();
        args.extend(extra.iter().map(OsString::from));
        let expanded = expand(args, &cli).map_err(|e| e.message)?;
        let m = cli.try_get_matches_from(expanded).map_err(|e| e.to_string())?;
        let (_, sub) = m.subcommand().unwrap();
        <Demo as clap::FromArgMatches>::from_arg_matches(sub).map_err(|e| e.to_string())
    }

    #[test]
    fn file_values_apply_and_the_command_line_overrides_them() {
        let d = with_file("batch_size = 8\nlr = 0.5\nname = \"x\"\ngrids = [8, 4, 2]\noverwrite = true\n", &["--lr", "0.25"]).unwrap();
        assert_eq!((d.batch_size, d.lr, d.name.as_deref(), d.grids.as_deref(), d.overwrite), (8, 0.25, Some("x"), Some("8,4,2"), true));
        let d = with_file("batch-size = 4\noverwrite = false\n", &["--batch-size", "6"]).unwrap();
        assert_eq!((d.batch_size, d.overwrite), (6, false));
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let e = with_file("batch_sise = 8\n", &[]).unwrap_err();
        assert!(e.contains("c.toml") && e.contains("unknown key 'batch_sise'") && e.contains("batch-size"), "{e}");
        let e = with_file("batch_size = \"eight\"\n", &[]).unwrap_err();
        assert!(e.contains("c.toml") && e.contains("key 'batch_size' must be an integer"), "{e}");
        let e = with_file("lr = true\n", &[]).unwrap_err();
        assert!(e.contains("key 'lr' must be a number"), "{e}");
        let e = with_file("overwrite = 1\n", &[]).unwrap_err();
        assert!(e.contains("key 'overwrite' must be a boolean"), "{e}");
        let e = with_file("batch_size = -3\n", &[]).unwrap_err();
        assert!(e.contains("key 'batch_size'") && e.contains("-3"), "{e}");
        let e = with_file("lr = [0.1\n", &[]).unwrap_err();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = with_file("config = \"other.toml\"\n", &[]).unwrap_err();
        assert!(e.contains("unknown key 'config'"), "{e}");
    }
}
