//! The native `policy-gateway` command line, over the same core the filter runs.
//!
//! Arguments are parsed by clap (feature `cli`, native targets only: the `.wasm` never carries
//! it): every command has `--help` with examples, `--version`, usage errors that show the usage
//! line, and `completions SHELL`. Help and errors are written to the writers given to [`run`],
//! plain and escaped like every other output (arguments may come from scripts and files).

pub mod chargeback;
pub mod check;
pub mod compare;
pub mod diff;
pub mod records;
pub mod simulate;
pub mod table;
pub mod trail;
pub mod verify;

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

/// The process exit status of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `check`, every policy is valid.
    Ok = 0,
    /// `check`: at least one policy is invalid (or cannot be read); `trail verify`:
    /// tampering found.
    Invalid = 1,
    /// Usage error (the usage line is shown), or input that cannot be read or used.
    Error = 2,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit statuses, as `--help` and the README state them.
const EXIT_STATUS: &str = "\
Exit status:
  0  success (check: every policy is valid)
  1  check: a policy is invalid or cannot be read; trail verify: tampering found
  2  usage error (the usage line is shown), or input that cannot be read or used";

const EXAMPLES: &str = "\
Examples:
  policy-gateway check policies/*.json
  policy-gateway simulate --policy policies/default.json --input policies/examples/traffic.jsonl
  policy-gateway diff --from policies/default.json --to policies/examples/default-v2.json \\
      --input policies/examples/traffic.jsonl
  policy-gateway trail --user mallory --format table audit-export/
  policy-gateway trail verify --key k2026=trail.key audit-export/
  policy-gateway chargeback --from 2026-11-01 --to 2026-12-01 --by project,model audit-export/
  policy-gateway compare --candidate audit-export/
  policy-gateway completions bash > ~/.local/share/bash-completion/completions/policy-gateway

RECORDS (trail, chargeback, compare) are exported audit records: files or directories
(recursively), JSON lines or a JSON array, gzip or not, as any sink delivered them; - is stdin.
`policy-gateway help COMMAND` or `policy-gateway COMMAND --help` shows a command's options.";

#[derive(Debug, Parser)]
#[command(
    name = "policy-gateway",
    version,
    about = "Check policies, simulate and diff traffic, and report over audit trails",
    arg_required_else_help = true,
    after_help = format!("{EXAMPLES}\n\n{EXIT_STATUS}"),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(check::Args),
    Simulate(simulate::Args),
    Diff(diff::Args),
    Trail(trail::Args),
    Chargeback(chargeback::Args),
    // `--policy` filters the other record commands; compare's help hides it and its use is an
    // error pointing to --before and --after (compare::run).
    #[command(mut_arg("policy_id", |a| a.hide(true)))]
    Compare(compare::Args),
    Completions(CompletionsArgs),
}

/// Print a shell completion script
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  policy-gateway completions bash > ~/.local/share/bash-completion/completions/policy-gateway
  policy-gateway completions zsh > ~/.zfunc/_policy-gateway    # with fpath+=(~/.zfunc) in .zshrc
  policy-gateway completions fish > ~/.config/fish/completions/policy-gateway.fish
  policy-gateway completions powershell >> $PROFILE

Exit status: 0 printed, 2 usage error.")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Why a command stopped short of its work.
#[derive(Debug)]
pub enum Failure {
    /// A combination of arguments clap cannot check; shown like clap's own usage errors.
    Usage(Box<clap::Error>),
    /// Input that cannot be read or used (or output that cannot be written): the message
    /// names the file and the problem.
    Input(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Input(message)
    }
}

impl From<clap::Error> for Failure {
    fn from(e: clap::Error) -> Failure {
        Failure::Usage(Box::new(e))
    }
}

/// Runs the CLI on the arguments after the program name; returns the process exit code.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = std::iter::once(OsString::from("policy-gateway"))
        .chain(args.into_iter().map(Into::into))
        .collect();
    let mut out = Watched {
        inner: out,
        closed: false,
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let usage = usage_of(&argv);
            return report(&e, usage.as_deref(), &mut out, err);
        }
    };
    let (name, result) = match &cli.command {
        Command::Check(a) => ("check", check::run(a, &mut out, err)),
        Command::Simulate(a) => ("simulate", simulate::run(a, &mut out, err)),
        Command::Diff(a) => ("diff", diff::run(a, &mut out, err)),
        Command::Trail(a) => ("trail", trail::run(a, &mut out, err)),
        Command::Chargeback(a) => ("chargeback", chargeback::run(a, &mut out, err)),
        Command::Compare(a) => ("compare", compare::run(a, &mut out, err)),
        Command::Completions(a) => ("completions", completions(a.shell, &mut out)),
    };
    match result {
        // The reader went away (`| head`): what it wanted it got, as with grep or ripgrep.
        _ if out.closed => Exit::Ok.code(),
        Ok(exit) => exit.code(),
        Err(Failure::Usage(e)) => report(&e, None, &mut out, err),
        Err(Failure::Input(message)) => {
            let _ = writeln!(err, "{name}: {}", table::display(&message));
            Exit::Error.code()
        }
    }
}

/// Writes the completion script for `shell`.
fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<Exit, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "policy-gateway", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 spells the state of a hyphenated binary's subcommand two ways (its
        // loop sets policy__gateway__subcmd__trail, its case arms test
        // policy__subcmd__gateway__subcmd__trail), so no subcommand's options or values
        // complete (clap-rs/clap#6421): one spelling.
        script = String::from_utf8_lossy(&script)
            .replace("policy__subcmd__gateway", "policy__gateway")
            .into_bytes();
    }
    out.write_all(&script).map_err(|e| e.to_string())?;
    Ok(Exit::Ok)
}

/// The output writer, noting whether its reader went away.
struct Watched<'a> {
    inner: &'a mut dyn Write,
    closed: bool,
}

impl Watched<'_> {
    fn note<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            self.closed |= e.kind() == std::io::ErrorKind::BrokenPipe;
        }
        r
    }
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

/// Writes what clap has to say (help and version to `out`, errors to `err` with the usage
/// line: `usage` where clap's message has none), each line escaped; returns its exit code (0
/// for help and version, else 2).
fn report(e: &clap::Error, usage: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let text = e.render().to_string();
    let to: &mut dyn Write = if e.use_stderr() { err } else { out };
    let usage = usage.filter(|_| e.use_stderr() && !text.contains("\nUsage: "));
    let mut usage_pending = usage.is_some();
    for line in text.lines() {
        if usage_pending && line.starts_with("For more information") {
            if let Some(u) = usage {
                let _ = writeln!(to, "{}\n", table::display(u));
            }
            usage_pending = false;
        }
        let _ = writeln!(to, "{}", table::display(line));
    }
    if let Some(u) = usage.filter(|_| usage_pending) {
        let _ = writeln!(to, "\n{}", table::display(u));
    }
    e.exit_code()
}

/// The usage line of the subcommand the arguments name, else of the tool.
fn usage_of(argv: &[OsString]) -> Option<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let name = argv.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let usage = match cmd.find_subcommand_mut(name) {
        Some(sub) => sub.render_usage(),
        None => cmd.render_usage(),
    };
    Some(usage.to_string().trim_end().to_string())
}

/// A usage error found after parsing (a combination clap cannot express), shown like clap's
/// own: the message, then the subcommand's usage line and a pointer to `--help`.
pub(crate) fn usage_error(subcommand: &str, message: impl std::fmt::Display) -> Failure {
    let mut cmd = Cli::command();
    cmd.build();
    let kind = clap::error::ErrorKind::ArgumentConflict;
    match cmd.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message),
        None => cmd.error(kind, message),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("policy-gateway").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    /// What `run` writes: exit code, stdout, stderr.
    fn run_in(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(args.iter().copied(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn the_command_definition_is_consistent() {
        // clap's own checks (names, ids, groups, conflicts) panic at first use otherwise.
        Cli::command().debug_assert();
    }

    #[test]
    fn simulate_passes_config_or_policy_through() {
        let Ok(Command::Simulate(a)) = parse(&["simulate", "--config", "p.json", "--input", "-"])
        else {
            panic!("simulate --config does not parse");
        };
        assert_eq!(a.source().unwrap(), simulate::Source::Config("p.json"));
        assert_eq!((a.policy, a.seed), (None, None));
        assert_eq!(a.format, simulate::Format::Json);
        let Ok(Command::Simulate(a)) = parse(&[
            "simulate", "--policy", "d.json", "--input", "t", "--seed", "7", "--format", "table",
        ]) else {
            panic!("simulate --policy does not parse");
        };
        assert_eq!(a.source().unwrap(), simulate::Source::Policy("d.json"));
        assert_eq!((a.seed, a.format), (Some(7), simulate::Format::Table));
        for bad in [
            &["simulate", "--input", "t"][..],
            &["simulate", "--policy", "a", "--config", "b", "--input", "t"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn chargeback_keys_keep_their_order_and_ignore_spaces() {
        let Ok(Command::Chargeback(a)) = parse(&["chargeback", "--by", "model, project", "r"])
        else {
            panic!("chargeback does not parse");
        };
        assert_eq!(a.by, [chargeback::Key::Model, chargeback::Key::Project]);
        let Ok(Command::Chargeback(a)) = parse(&["chargeback", "r"]) else {
            panic!("chargeback does not parse");
        };
        use chargeback::Key::*;
        assert_eq!(a.by, [Project, User, Model]);
    }

    #[test]
    fn help_goes_to_stdout_and_errors_to_stderr_escaped() {
        let (code, out, err) = run_in(&["trail", "--help"]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains("Usage: policy-gateway trail [OPTIONS] <RECORDS>..."));
        // An argument is quoted back in the error: its terminal controls are not sent as they are.
        let (code, out, err) = run_in(&["trail", "--decision", "\u{1b}]0;owned\u{7}", "r"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("'\\u{1b}]0;owned\\u{7}'"), "{err}");
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(
            err.contains("Usage: policy-gateway trail [OPTIONS] <RECORDS>..."),
            "{err}"
        );
    }

    #[test]
    fn errors_found_after_parsing_read_like_clap_ones() {
        let (code, out, err) = run_in(&["compare", "--policy", "p@1", "r"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert_eq!(
            err,
            "error: --policy does not apply: use --before and --after\n\n\
             Usage: policy-gateway compare [OPTIONS] <RECORDS>...\n\n\
             For more information, try '--help'.\n"
        );
        let (code, _, err) = run_in(&["simulate", "--policy", "/nonexistent.json", "--input", "-"]);
        assert_eq!(code, 2);
        assert!(
            err.starts_with("simulate: /nonexistent.json: cannot read"),
            "{err}"
        );
    }
}
